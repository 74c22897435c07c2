import session from 'express-session';
import type { RequestHandler } from 'express';
import passport from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import type { Subkey } from '../../warehouse/keyring/keyring.ts';
import { KnexSessionStore } from '../services/session-store.ts';
import { buildSaveSessionFirst } from './save-session-first.ts';
import { fetchUser, verifyUserPassword } from '../services/user-service.ts';

export const SESSION_COOKIE = 'hub.sid';

declare module 'express-session' {
  interface SessionData {
    /** Set after a right password, until the one-time code is right too. */
    pendingUsername?: string;
  }
}

/** The keyring purpose whose subkeys sign session cookies (see warehouse/keyring/README.md). */
export const SESSION_COOKIE_KEY_PURPOSE = 'portal-session';

/**
 * Sessions in the warehouse, cookies HttpOnly and SameSite=Lax, Secure whenever the request
 * came over HTTPS (directly, or through a proxy trusted by HUB_TRUST_PROXY), expiring when idle.
 *
 * The cookie is signed with the keyring's portal-session subkey, never a key kept in the
 * warehouse, so a copy of the database cannot forge a cookie for a session it lists. The current
 * key signs; every key still on the keyring verifies, so `hub keys rotate` signs nobody out and
 * `hub keys prune` ends the cookies signed under the keys it removes. The keyring re-reads its
 * file when it changes, and the middleware is rebuilt when the set of keys does.
 */
export function buildSessionMiddleware(ctx: AppContext): RequestHandler {
  const store = new KnexSessionStore(ctx.knex, ctx.clock, ctx.config.sessionIdleMs);
  const saveFirst = buildSaveSessionFirst(store);
  let built: { kids: string; handler: RequestHandler } | null = null;
  const build = (secrets: string[]) =>
    session({
      name: SESSION_COOKIE,
      secret: secrets,
      store,
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
    let subkeys: Subkey[];
    try {
      subkeys = ctx.keyring.listSubkeys(SESSION_COOKIE_KEY_PURPOSE);
    } catch (err) {
      next(err);
      return;
    }
    const kids = subkeys.map((k) => k.kid).join(',');
    if (built?.kids !== kids)
      built = { kids, handler: build(subkeys.map((k) => k.key.toString('base64url'))) };
    built.handler(req, res, (err?: unknown) => (err === undefined ? saveFirst(req, res, next) : next(err)));
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
