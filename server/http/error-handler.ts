import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { HubError, readRetryAfter } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { describeConnectionError } from '../../warehouse/db.ts';

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new HubError('not_found', 404, `no route for ${req.method} ${req.path}`));
};

/** Every error leaves as {"error": {"code", "message"}}; anything unexpected is logged and answered as a bare 500. */
export function buildErrorHandler(ctx: AppContext): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const requestId = String(res.getHeader('x-request-id') ?? '');
    if (res.headersSent) {
      // A second answer cannot follow the first: log it, and leave the response as it is.
      ctx.logger.error({ err, requestId, path: req.path }, 'error after the answer was sent');
      return;
    }
    sendHubError(res, describeFailure(ctx, err, requestId, req.path));
  };
}

/**
 * The answer any error thrown while serving a request gets: a HubError as it is, a client's bad
 * request as 400, a warehouse outage as 503, and anything else logged and answered as a bare 500.
 */
export function describeFailure(ctx: AppContext, err: unknown, requestId: string, path: string): HubError {
  if (err instanceof HubError) return err;
  if (isBodyParserError(err)) return new HubError('invalid_request', 400, 'request body is not valid JSON');
  if (isClientHttpError(err)) return new HubError('invalid_request', 400, err.message);
  const reason = describeConnectionError(err);
  if (reason !== null) {
    // An outage, not a bug: one entry with the reason, no stack, and a 503 that says only that.
    ctx.logger.error({ requestId, path, reason }, 'warehouse unavailable');
    return new HubError('warehouse_unavailable', 503, `the warehouse does not answer (request ${requestId})`);
  }
  ctx.logger.error({ err, requestId, path }, 'unhandled error');
  return new HubError('internal_error', 500, `internal error (request ${requestId})`);
}

/** The answer an error gets: its status, Retry-After for a 429, and {"error": {"code", "message"}}. */
export function sendHubError(
  res: Response,
  error: HubError,
  json: (body: unknown) => unknown = (body) => res.json(body),
): void {
  const retryAfter = readRetryAfter(error);
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
  res.status(error.status);
  json(hubErrorBody(error));
}

export function hubErrorBody(error: HubError): { error: { code: string; message: string } } {
  return { error: { code: error.code, message: error.message } };
}

function isBodyParserError(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && (err as { type?: unknown }).type === 'entity.parse.failed'
  );
}

/**
 * The bad requests express and body-parser reject before any route runs: http-errors marked
 * safe to show (a body over the size limit, an unsupported charset) and the router's URIError
 * for a malformed %-escape in the path. The client's fault, so a 400 rather than a logged 500.
 */
function isClientHttpError(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  const { expose, status } = err as Error & { expose?: unknown; status?: unknown };
  const clientStatus = typeof status === 'number' && status >= 400 && status < 500;
  return clientStatus && (expose === true || err instanceof URIError);
}
