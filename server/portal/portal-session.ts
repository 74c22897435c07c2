import session from 'express-session';
import type { RequestHandler } from 'express';
import passport from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { fetchSessionCookieKey, KnexSessionStore } from '../services/session-store.ts';
import { fetchUser, verifyUserPassword } from '../services/user-service.ts';

export const SESSION_COOKIE = 'hub.sid';

declare module 'express-session' {
  interface SessionData {
    /** Set after a right password, until the one-time code is right too. */
    pendingUsername?: string;
  }
}

/**
 * Sessions in the warehouse, cookies HttpOnly and SameSite=Lax, Secure whenever the request
 * came over HTTPS (directly, or through a proxy trusted by HUB_TRUST_PROXY), expiring when idle.
 * The cookie key is read from the warehouse at the first request, so the app builds synchronously.
 */
export function buildSessionMiddleware(ctx: AppContext): RequestHandler {
  let middleware: Promise<RequestHandler> | null = null;
  const build = async () =>
    session({
      name: SESSION_COOKIE,
      secret: await fetchSessionCookieKey(ctx.knex),
      store: new KnexSessionStore(ctx.knex, ctx.clock, ctx.config.sessionIdleMs),
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: {
        httpOnly: true,
        sameSite: 'lax',
        secure: 'auto',
        maxAge: ctx.config.sessionIdleMs,
        path: '/',
      },
    });
  return (req, res, next) => {
    middleware ??= build();
    middleware.then(
      (handler) => handler(req, res, next),
      (err: unknown) => {
        middleware = null;
        next(err);
      },
    );
  };
}

/** One passport per app: the password step is passport's local strategy; the user is re-read on every request. */
export function buildPassport(ctx: AppContext): passport.Authenticator {
  const authenticator = new passport.Passport();
  authenticator.use(
    new LocalStrategy((username, password, done) => {
      verifyUserPassword(ctx, username, password).then(
        (user) => done(null, user),
        (err: unknown) =>
          err instanceof HubError && err.code === 'invalid_login' ? done(null, false) : done(err),
      );
    }),
  );
  authenticator.serializeUser((user, done) => done(null, user.username));
  authenticator.deserializeUser((username: string, done) => {
    // A disabled account is signed out at its next request.
    fetchUser(ctx, username).then(
      (user) => done(null, user?.status === 'active' ? user : false),
      (err: unknown) => done(err),
    );
  });
  return authenticator;
}
