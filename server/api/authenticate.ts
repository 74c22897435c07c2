import type { Request, RequestHandler } from 'express';
import type { AppContext } from '../context.ts';
import { authenticateCaller, normalizeIp, type ApiCaller } from '../services/token-service.ts';
import type { ApiState } from './api-state.ts';

const CALLER = Symbol('caller');

/** Bearer token → caller, then the caller's rate limits; every consumer route sits behind it. */
export function buildAuthenticate(ctx: AppContext, state: ApiState): RequestHandler {
  return async (req, _res, next) => {
    const caller = await authenticateCaller(ctx, state.keys, req.headers.authorization, normalizeIp(req.socket.remoteAddress));
    // Known before the rate limit, so that a refused (429) request is audited under its client.
    (req as Request & { [CALLER]?: ApiCaller })[CALLER] = caller;
    state.limiter.consume(caller.clientId, caller.limits);
    next();
  };
}

export function callerOf(req: Request): ApiCaller {
  const caller = findCaller(req);
  if (caller === null) throw new Error('route is not behind buildAuthenticate');
  return caller;
}

/** The authenticated caller, or null before (or without) authentication. */
export function findCaller(req: Request): ApiCaller | null {
  return (req as Request & { [CALLER]?: ApiCaller })[CALLER] ?? null;
}
