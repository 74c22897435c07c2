import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import { randomUUID } from 'node:crypto';
import type { RequestListener } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AppContext } from './context.ts';
import { buildErrorHandler, notFoundHandler } from './http/error-handler.ts';
import { buildStatusRoutes } from './portal/status-routes.ts';
import { buildPortalRoutes } from './portal/portal-routes.ts';
import { createApiState, type ApiState } from './api/api-state.ts';
import { answerFrequentCallsFirst } from './api/frequent-calls-path.ts';
import { readFixedHeaders } from './http/fixed-headers.ts';
import { parseJsonBody, raiseBodyRefusedBeforeExpress } from './http/json-body.ts';
import { buildAuditOutcome } from './api/audit-outcome.ts';
import { buildAuthenticate } from './api/authenticate.ts';
import { buildOpenApiRoutes } from './api/openapi-routes.ts';
import { buildPersonRoutes } from './api/person-routes.ts';
import { buildQueryRoutes } from './api/query-routes.ts';
import { buildTokenRoutes } from './api/token-routes.ts';
import { buildDciErrorHandler, buildDciRoutes } from './dci/dci-routes.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Answers of the consumer and DCI APIs carry personal data: no browser or proxy may keep them. */
const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  next();
};

/**
 * The hub's HTTP answers: the frequent API calls' own path (server/api/frequent-calls-path.ts) in
 * front of the express app, which serves everything else and every request the path hands it.
 */
export function buildApp(ctx: AppContext): RequestListener {
  const api = createApiState(ctx);
  const securityHeaders = helmet();
  const app = buildExpressApp(ctx, api, securityHeaders);
  return answerFrequentCallsFirst(ctx, api.limiter, readFixedHeaders(securityHeaders), app);
}

/** The middleware order, in one place: a fresh read snapshot, security headers, request id, no caching of API answers, API outcome audit, body parsing, public pages, token, authenticated API, status pages, the portal (sessions on its own paths only), DCI APIs, errors. */
export function buildExpressApp(
  ctx: AppContext,
  api: ApiState = createApiState(ctx),
  securityHeaders: RequestHandler = helmet(),
): Express {
  const app = express();
  app.disable('x-powered-by');
  // Every answer built here is private (personal data, a session's page): never stored, so an
  // entity tag, with the hash of each body it costs and the 304s it allows, serves no one.
  app.set('etag', false);
  app.set('trust proxy', ctx.config.trustProxy);
  app.set('views', path.join(ROOT, 'views'));
  app.set('view engine', 'ejs');
  // Reads of one turn share a snapshot (PreparedReads): none older than the request that reads.
  app.use((_req, _res, next) => {
    ctx.reads.endSnapshot();
    next();
  });
  app.use(securityHeaders);
  app.use((_req, res, next) => {
    res.setHeader('x-request-id', randomUUID());
    next();
  });
  app.use(['/api/v1', '/dci'], noStore);
  app.use('/api/v1', buildAuditOutcome(ctx));
  app.use('/public', express.static(path.join(ROOT, 'views/public'), { maxAge: '1h' }));
  app.use(raiseBodyRefusedBeforeExpress);
  app.use(parseJsonBody);
  app.use(express.urlencoded({ extended: false, limit: '100kb' }));
  // The consumer API first: its calls are the many, and nothing mounted after it serves /api/v1.
  app.use(buildTokenRoutes(ctx, api));
  app.use('/api/v1', buildAuthenticate(ctx, api));
  app.use(buildPersonRoutes(ctx));
  app.use(buildQueryRoutes(ctx));
  app.use(buildOpenApiRoutes(ctx));
  app.use(buildStatusRoutes(ctx));
  app.use(buildPortalRoutes(ctx));
  app.use(buildDciRoutes(ctx, api));
  app.use(buildDciErrorHandler(ctx));
  app.use(notFoundHandler);
  app.use(buildErrorHandler(ctx));
  return app;
}
