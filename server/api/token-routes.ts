import { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { HubError, readRetryAfter } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { issueToken, normalizeIp, refuseMalformedTokenRequest } from '../services/token-service.ts';
import type { ApiState } from './api-state.ts';

export const TOKEN_PATH = '/api/v1/token';

/**
 * The token endpoint and its own error handler: unlike the rest of the API, its errors are
 * RFC 6749 §5.2's `{"error": "invalid_client", "error_description": "..."}`, so stock OAuth2
 * client libraries read them. Mounted as one list, the handler also sees the body parser's
 * errors for this path (malformed JSON), which happen before any route runs.
 */
export function buildTokenRoutes(
  ctx: AppContext,
  _state: ApiState,
): Array<RequestHandler | ErrorRequestHandler> {
  const router = Router();
  router.post(TOKEN_PATH, async (req, res) => {
    const ip = normalizeIp(req.socket.remoteAddress);
    const body = await issueToken(ctx, {
      ip,
      body: req.body as unknown,
      authorization: req.headers.authorization,
    });
    // Cache-Control: no-store comes with every API answer (server/app.ts); RFC 6749 §5.1 adds Pragma.
    res.setHeader('Pragma', 'no-cache');
    res.json(body);
  });
  router.all(TOKEN_PATH, refuseTokenMethod(TOKEN_PATH));
  return [router, buildTokenErrorHandler(ctx)];
}

/** Every method but POST at a token endpoint (this one and the DCI authz one): 405 with Allow: POST. */
export function refuseTokenMethod(tokenPath: string): RequestHandler {
  return (req, res) => {
    res.setHeader('Allow', 'POST');
    throw new HubError(
      'invalid_request',
      405,
      `${req.method} is not allowed here: request a token with POST ${tokenPath}`,
    );
  };
}

function buildTokenErrorHandler(ctx: AppContext): ErrorRequestHandler {
  return async (err: unknown, req, res, next) => {
    if (req.path !== TOKEN_PATH) {
      next(err);
      return;
    }
    const error = await resolveTokenError(ctx, err, req, res);
    setTokenErrorHeaders(res, error);
    res.status(error.status).json({ error: error.code, error_description: error.message });
  };
}

/**
 * What a failed token request is answered with, at /api/v1/token and at the DCI authz endpoint
 * alike: the issuer's refusal as it is; a body the parser refused (malformed JSON, too large)
 * as invalid_request, counted against the address and audited like any other failure; anything
 * else as a logged 500.
 */
export async function resolveTokenError(
  ctx: AppContext,
  err: unknown,
  req: Request,
  res: Response,
): Promise<HubError> {
  if (err instanceof HubError) return err;
  const refused = readBodyParserError(err);
  if (refused !== null)
    return refuseMalformedTokenRequest(ctx, normalizeIp(req.socket.remoteAddress), refused);
  const requestId = String(res.getHeader('x-request-id') ?? '');
  ctx.logger.error({ err, requestId, path: req.path }, 'unhandled error');
  return new HubError('server_error', 500, `internal error (request ${requestId})`);
}

/** The headers of a refused token request, at /api/v1/token and at the DCI authz endpoint alike. */
export function setTokenErrorHeaders(res: Response, error: HubError): void {
  // Cache-Control: no-store comes with every API answer (server/app.ts); RFC 6749 §5.1 adds Pragma.
  res.setHeader('Pragma', 'no-cache');
  // RFC 7235: a 401 names the scheme to use; RFC 6749 §5.2 requires it when Basic was tried.
  if (error.status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="Registry Hub", charset="UTF-8"');
  const retryAfter = readRetryAfter(error);
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
}

/** The body parser's refusals (malformed JSON, a body over the limit, an unknown charset) as invalid_request. */
function readBodyParserError(err: unknown): HubError | null {
  if (!(err instanceof Error)) return null;
  const { type, status, expose } = err as Error & { type?: unknown; status?: unknown; expose?: unknown };
  if (type === 'entity.parse.failed')
    return new HubError('invalid_request', 400, 'request body is not valid JSON');
  if (typeof status === 'number' && status >= 400 && status < 500 && expose === true)
    return new HubError('invalid_request', 400, err.message);
  return null;
}
