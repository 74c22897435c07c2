import type { Request, RequestHandler } from 'express';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import type { PendingCount } from '../services/rate-limiter.ts';
import { authenticateCaller, normalizeIp, type ApiCaller } from '../services/token-service.ts';
import type { ApiState } from './api-state.ts';

const CALLER = Symbol('caller');
const REFUSED = Symbol('refused client');
const COUNT = Symbol('rate count');

type AuthenticatedRequest = Request & {
  [CALLER]?: ApiCaller;
  [REFUSED]?: AuditedClient;
  [COUNT]?: PendingCount;
};

/** The client a request came from, as far as authentication established it. */
export interface AuditedClient {
  clientId: string;
  entity: string;
}

/**
 * Bearer token → caller, then the caller's rate limits; every consumer route sits behind it. On
 * SQLite the request is counted in the transaction that writes its answer's audit event
 * (buildAuditOutcome takes the count), one commit instead of two: a request over its limit has
 * made its reads when 429 replaces its answer, until this process has seen that window full
 * (RateLimiter), after which the client's calls are refused here.
 */
export function buildAuthenticate(ctx: AppContext, state: ApiState): RequestHandler {
  return async (req, _res, next) => {
    let caller: ApiCaller;
    try {
      caller = await authenticateCaller(
        ctx,
        req.headers.authorization,
        normalizeIp(req.socket.remoteAddress),
      );
    } catch (err) {
      // A client whose token verified but who is refused (say, from a new address) is still named in the audit.
      const refused = err instanceof HubError ? err.details : undefined;
      if (typeof refused?.client_id === 'string' && typeof refused.entity === 'string') {
        (req as AuthenticatedRequest)[REFUSED] = {
          clientId: refused.client_id,
          entity: refused.entity,
        };
      }
      throw err;
    }
    // Known before the rate limit, so that a refused (429) request is audited under its client.
    (req as AuthenticatedRequest)[CALLER] = caller;
    if (ctx.audit.writesInTurns)
      (req as AuthenticatedRequest)[COUNT] = state.limiter.startCount(caller.clientId, caller.limits);
    else await state.limiter.consume(caller.clientId, caller.limits);
    next();
  };
}

export function callerOf(req: Request): ApiCaller {
  const caller = (req as AuthenticatedRequest)[CALLER];
  if (caller === undefined) throw new Error('route is not behind buildAuthenticate');
  return caller;
}

/** The authenticated caller, or the verified client that was refused; null before or without authentication. */
export function findAuditedClient(req: Request): AuditedClient | null {
  const r = req as AuthenticatedRequest;
  return r[CALLER] ?? r[REFUSED] ?? null;
}

/** The request's rate count not yet taken, once: the caller takes it with the answer's audit event. */
export function takePendingCount(req: Request): PendingCount | null {
  const r = req as AuthenticatedRequest;
  const count = r[COUNT] ?? null;
  r[COUNT] = undefined;
  return count;
}
