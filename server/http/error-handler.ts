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
    let hubError: HubError;
    if (err instanceof HubError) hubError = err;
    else if (isBodyParserError(err))
      hubError = new HubError('invalid_request', 400, 'request body is not valid JSON');
    else if (isClientHttpError(err)) hubError = new HubError('invalid_request', 400, err.message);
    else if (describeConnectionError(err) !== null) {
      // An outage, not a bug: one entry with the reason, no stack, and a 503 that says only that.
      ctx.logger.error(
        { requestId, path: req.path, reason: describeConnectionError(err) },
        'warehouse unavailable',
      );
      hubError = new HubError(
        'warehouse_unavailable',
        503,
        `the warehouse does not answer (request ${requestId})`,
      );
    } else {
      ctx.logger.error({ err, requestId, path: req.path }, 'unhandled error');
      hubError = new HubError('internal_error', 500, `internal error (request ${requestId})`);
    }
    sendHubError(res, hubError);
  };
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
  json({ error: { code: error.code, message: error.message } });
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
