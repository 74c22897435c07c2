import express, { type Express } from 'express';
import helmet from 'helmet';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AppContext } from './context.ts';
import { buildErrorHandler, notFoundHandler } from './http/error-handler.ts';
import { buildStatusRoutes } from './portal/status-routes.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The middleware order, in one place: security headers, request id, body parsing, routes, errors. */
export function buildApp(ctx: AppContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('views', path.join(ROOT, 'views'));
  app.set('view engine', 'ejs');
  app.use(helmet());
  app.use((_req, res, next) => {
    res.setHeader('x-request-id', randomUUID());
    next();
  });
  app.use('/public', express.static(path.join(ROOT, 'views/public'), { maxAge: '1h' }));
  app.use(express.json({ limit: '100kb' }));
  app.use(express.urlencoded({ extended: false, limit: '100kb' }));
  app.use(buildStatusRoutes(ctx));
  app.use(notFoundHandler);
  app.use(buildErrorHandler(ctx));
  return app;
}
