import cookieParser from 'cookie-parser';
import { Router } from 'express';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { provideCsrfToken } from './csrf.ts';
import { buildLanguageMiddleware } from './locale.ts';
import { buildPortalErrorHandler, isPortalPath, requireSignedIn } from './portal-access.ts';
import { buildPassport, buildSessionMiddleware } from './portal-session.ts';
import { buildSignInRoutes } from './sign-in-routes.ts';
import { buildDashboardRoutes } from './dashboard-routes.ts';
import { buildPrivilegeRoutes } from './privilege-routes.ts';
import { buildQueryBuilderRoutes } from './query-builder-routes.ts';
import { buildSettingsRoutes } from './settings-routes.ts';
import { buildConnectorRoutes } from './connector-routes.ts';
import { buildAuditRoutes } from './audit-routes.ts';

/**
 * The admin portal, in one order: only portal paths get a session (the API stays stateless),
 * then the language, the CSRF check, the sign-in pages, and behind them the signed-in screens.
 */
const SIGN_IN_PATH = /^\/login(?:\/code)?$/;

export function buildPortalRoutes(ctx: AppContext): Router {
  const router = Router();
  const authenticator = buildPassport(ctx);
  router.use((req, _res, next) => next(isPortalPath(req.path) ? undefined : 'router'));
  router.use((_req, res, next) => {
    res.setHeader('cache-control', 'no-store');
    next();
  });
  router.use(cookieParser());
  router.use(buildLanguageMiddleware(false));
  router.use(buildSessionMiddleware(ctx));
  router.use(authenticator.session());
  // Without a session every screen (a form post included) leads to the sign-in page, before any other check.
  router.use((req, res, next) => (SIGN_IN_PATH.test(req.path) ? next() : requireSignedIn(req, res, next)));
  router.use(provideCsrfToken);
  router.use(buildSignInRoutes(ctx, authenticator));
  router.use(buildDashboardRoutes(ctx));
  router.use(buildPrivilegeRoutes(ctx));
  router.use(buildQueryBuilderRoutes(ctx));
  router.use(buildSettingsRoutes(ctx));
  router.use(buildConnectorRoutes(ctx));
  router.use(buildAuditRoutes(ctx));
  router.use((req, _res, next) => next(new HubError('not_found', 404, `no page ${req.path}`)));
  router.use(buildPortalErrorHandler(ctx));
  return router;
}
