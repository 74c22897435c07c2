import { Router, type Request } from 'express';
import type passport from 'passport';
import QRCode from 'qrcode';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { fetchTotpEnrollment, verifyUserCode, type UserRecord } from '../services/user-service.ts';
import { SESSION_COOKIE } from './portal-session.ts';

const regenerate = (req: Request) =>
  new Promise<void>((resolve, reject) =>
    req.session.regenerate((err?: Error) => (err ? reject(err) : resolve())),
  );
const login = (req: Request, user: UserRecord) =>
  new Promise<void>((resolve, reject) => req.login(user, (err?: Error) => (err ? reject(err) : resolve())));

/**
 * Username and password (passport's local strategy), then the one-time code; a user who has
 * never entered a right code first sees the QR code of their secret. The session id changes
 * after the password and again at sign-in, so an id planted before sign-in is worth nothing.
 */
export function buildSignInRoutes(ctx: AppContext, authenticator: passport.Authenticator): Router {
  const router = Router();

  router.get('/login', (req, res) => {
    if (req.user !== undefined) return res.redirect(303, '/');
    res.render('pages/login', { title: 'login_title', failed: false, username: '' });
  });

  router.post('/login', (req, res, next) => {
    const handler = authenticator.authenticate(
      'local',
      { session: false },
      (err: unknown, user: UserRecord | false) => {
        if (err) return next(err);
        if (user === false) {
          const username =
            typeof (req.body as Record<string, unknown>).username === 'string'
              ? String((req.body as Record<string, unknown>).username)
              : '';
          return res
            .status(401)
            .render('pages/login', { title: 'login_title', failed: true, username: username.slice(0, 64) });
        }
        regenerate(req)
          .then(() => {
            req.session.pendingUsername = user.username;
            res.redirect(303, '/login/code');
          })
          .catch(next);
      },
    ) as (...args: unknown[]) => void;
    handler(req, res, next);
  });

  router.get('/login/code', async (req, res) => {
    const username = req.session.pendingUsername;
    if (username === undefined) return res.redirect(303, '/login');
    res.render('pages/login-code', {
      title: 'code_title',
      failed: false,
      ...(await buildEnrollment(ctx, username)),
    });
  });

  router.post('/login/code', async (req, res) => {
    const username = req.session.pendingUsername;
    if (username === undefined) return res.redirect(303, '/login');
    const code = (req.body as Record<string, unknown>).code;
    let user: UserRecord;
    try {
      user = await verifyUserCode(ctx, username, typeof code === 'string' ? code.trim() : '');
    } catch (err) {
      if (!(err instanceof HubError) || err.code !== 'invalid_login') throw err;
      return res.status(401).render('pages/login-code', {
        title: 'code_title',
        failed: true,
        ...(await buildEnrollment(ctx, username)),
      });
    }
    await login(req, user);
    res.redirect(303, '/');
  });

  router.post('/logout', async (req, res) => {
    if (req.user !== undefined) {
      await ctx.audit.append({
        actor: req.user.username,
        entity: req.user.entity,
        action: 'logout',
        target: req.user.username,
      });
    }
    await new Promise<void>((resolve, reject) =>
      req.session.destroy((err?: Error) => (err ? reject(err) : resolve())),
    );
    res.clearCookie(SESSION_COOKIE, { path: '/' });
    res.redirect(303, '/login');
  });

  return router;
}

/** The QR code is drawn here as SVG: the secret never leaves for an outside service. */
async function buildEnrollment(
  ctx: AppContext,
  username: string,
): Promise<{ qrSvg: string | null; otpauthUri: string | null }> {
  const uri = await fetchTotpEnrollment(ctx, username);
  if (uri === null) return { qrSvg: null, otpauthUri: null };
  return { qrSvg: await QRCode.toString(uri, { type: 'svg', margin: 2 }), otpauthUri: uri };
}
