import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import type { UserRecord, UserRole } from '../services/user-service.ts';
import type { Actor } from '../../privileges/actor.ts';

/** The portal's screens, who may open them, and the menu they make; the server checks the same list. */
export const PORTAL_SCREENS = [
  { path: '/', key: 'nav_home', roles: ['super-admin', 'custodian', 'entity-admin'] },
  { path: '/privileges/tables', key: 'nav_table_privileges', roles: ['super-admin', 'custodian'] },
  { path: '/privileges/columns', key: 'nav_column_privileges', roles: ['super-admin', 'custodian'] },
  { path: '/queries/builder', key: 'nav_query_builder', roles: ['super-admin', 'entity-admin'] },
  { path: '/queries', key: 'nav_saved_queries', roles: ['super-admin', 'entity-admin'] },
  { path: '/settings/entities', key: 'nav_entities', roles: ['super-admin'] },
  { path: '/settings/users', key: 'nav_users', roles: ['super-admin'] },
  { path: '/settings/clients', key: 'nav_clients', roles: ['super-admin', 'entity-admin'] },
  { path: '/settings/connectors', key: 'nav_connectors', roles: ['super-admin', 'custodian'] },
  { path: '/audit', key: 'nav_audit', roles: ['super-admin', 'custodian', 'entity-admin'] },
] as const satisfies ReadonlyArray<{ path: string; key: string; roles: readonly UserRole[] }>;

const ERROR_PAGE_STATUSES = new Set([400, 401, 403, 404, 409, 429]);
const PORTAL_PATH = /^\/(?:login|logout|privileges|queries|settings|audit)(?:\/|$)/;

export const isPortalPath = (path: string) => path === '/' || PORTAL_PATH.test(path);

export function menuFor(user: UserRecord): Array<{ path: string; key: string }> {
  return PORTAL_SCREENS.filter((s) => (s.roles as readonly string[]).includes(user.role));
}

export function requireUser(req: Request): UserRecord {
  if (req.user === undefined) throw new HubError('unauthenticated', 401, 'sign in first');
  return req.user;
}

/** The user as the privileges and services see a caller. */
export function actorOf(user: UserRecord): Actor {
  return { name: user.username, role: user.role, entity: user.entity };
}

/** No session: to the sign-in page, whatever the route (a form post included). */
export const requireSignedIn: RequestHandler = (req, res, next) => {
  if (req.user === undefined) {
    res.redirect(303, '/login');
    return;
  }
  res.locals.user = req.user;
  res.locals.menu = menuFor(req.user);
  next();
};

/** A role the route is not for answers 403, whatever the menu shows. */
export function requireRole(...roles: UserRole[]): RequestHandler {
  return (req, _res, next) => {
    const user = requireUser(req);
    if (!roles.includes(user.role)) {
      next(new HubError('forbidden', 403, `${user.username} (${user.role}) may not open ${req.path}`));
      return;
    }
    next();
  };
}

/** Portal errors are pages in the user's language; nothing unknown leaves with its message. */
export function buildPortalErrorHandler(ctx: AppContext): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (res.headersSent) {
      // The answer has gone out (a streamed export, or a session write express-session makes after the head): a second one cannot follow.
      ctx.logger.error(
        { err, requestId: String(res.getHeader('x-request-id') ?? ''), path: req.path },
        'portal error after the answer was sent',
      );
      return;
    }
    let error: HubError;
    if (err instanceof HubError) error = err;
    else {
      const requestId = String(res.getHeader('x-request-id') ?? '');
      ctx.logger.error({ err, requestId, path: req.path }, 'unhandled portal error');
      error = new HubError('internal_error', 500, `internal error (request ${requestId})`);
    }
    if (req.user !== undefined) {
      res.locals.user = req.user;
      res.locals.menu = menuFor(req.user);
    }
    // A portal JSON endpoint (a run's progress) answers errors as the API does.
    if (req.path.endsWith('.json')) {
      res.status(error.status).json({ error: { code: error.code, message: error.message } });
      return;
    }
    const title = ERROR_PAGE_STATUSES.has(error.status) ? `error_${error.status}` : 'error_500';
    res.status(error.status).render('pages/portal-error', { error, title });
  };
}
