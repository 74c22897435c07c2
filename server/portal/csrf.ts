import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { HubError } from '../../warehouse/core/errors.ts';

declare module 'express-session' {
  interface SessionData {
    csrfToken?: string;
  }
}

const TOKEN_BYTES = 32;
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The synchronizer-token pattern: one random token per session, written into every form and
 * required on every state-changing request. A page on another site can make the browser send
 * the session cookie but cannot read the token. The session is regenerated at sign-in, which
 * issues a new token.
 */
export const provideCsrfToken: RequestHandler = (req, res, next) => {
  const expected = req.session.csrfToken;
  req.session.csrfToken ??= randomBytes(TOKEN_BYTES).toString('base64url');
  res.locals.csrfToken = req.session.csrfToken;
  if (UNSAFE.has(req.method)) {
    const sent = (req.body as Record<string, unknown> | undefined)?._csrf ?? req.get('x-csrf-token');
    if (!matchesToken(expected, sent)) {
      next(new HubError('csrf_failed', 403, 'the form has expired or did not come from this site'));
      return;
    }
  }
  next();
};

function matchesToken(expected: string | undefined, sent: unknown): boolean {
  if (expected === undefined || typeof sent !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(sent);
  return a.length === b.length && timingSafeEqual(a, b);
}
