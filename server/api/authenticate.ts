import type { Request, RequestHandler } from 'express';
import type { AppContext } from '../context.ts';
import { authenticateCaller, normalizeIp, type ApiCaller } from '../services/token-service.ts';
import type { ApiState } from './api-state.ts';

const CALLER = Symbol('caller');

/** Bearer token → caller, then the caller's rate limits; every consumer route sits behind it. */
export function buildAuthenticate(ctx: AppContext, state: ApiState): RequestHandler {
  return async (req, _res, next) => {
    const caller = await authenticateCaller(ctx, req.headers.authorization, normalizeIp(req.socket.remoteAddress));
    state.limiter.consume(caller.clientId, caller.limits);
    (req as Request & { [CALLER]?: ApiCaller })[CALLER] = caller;
    next();
  };
}

export function callerOf(req: Request): ApiCaller {
  const caller = (req as Request & { [CALLER]?: ApiCaller })[CALLER];
  if (caller === undefined) throw new Error('route is not behind buildAuthenticate');
  return caller;
}
