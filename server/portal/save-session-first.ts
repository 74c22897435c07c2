import type { Request, RequestHandler, Response } from 'express';
import type { Session } from 'express-session';
import type { KnexSessionStore } from '../services/session-store.ts';

type EndArgs = Parameters<Response['end']>;

/** The session's content as express-session compares it: everything but the cookie. */
const describeSession = (session: Session | undefined): string | null =>
  session === undefined || session === null
    ? null
    : JSON.stringify(session, (key, value: unknown) => (key === 'cookie' ? undefined : value));

const saveSession = (session: Session) =>
  new Promise<void>((resolve, reject) => session.save((err?: Error) => (err ? reject(err) : resolve())));

/**
 * Writes the session, or moves its idle expiry, before the response head leaves; runs right
 * after express-session.
 *
 * express-session writes the session in `res.end` after it has sent the head (and holds back
 * only the last byte of the body). Two things follow from that, both slower to show on a
 * networked database than on SQLite: a browser that follows a redirect on its head asks for
 * the next page before the session it was given exists, and a write that fails is handed to
 * `next(err)` once the page is already on its way, so the error page becomes a second answer
 * (ERR_HTTP_HEADERS_SENT, thrown outside any handler). Writing first makes a failure the only
 * answer and the session visible to whatever the browser asks next.
 */
export function buildSaveSessionFirst(store: KnexSessionStore): RequestHandler {
  return (req, res, next) => {
    const entrySession = req.session;
    const entryContent = describeSession(entrySession);
    // A session read from the store always holds something (an empty new one is never stored).
    const wasStored = entryContent !== null && entryContent !== '{}';
    const end = res.end.bind(res) as (...args: EndArgs) => Response;
    let settled = false;

    res.end = ((...args: EndArgs) => {
      if (settled || res.headersSent) return end(...args);
      settled = true;
      const write = chooseWrite(req, store, entrySession, entryContent, wasStored);
      if (write === null) return end(...args);
      write().then(
        () => end(...args),
        (err: unknown) => {
          // Nothing has left yet: the error page replaces the answer the route had prepared.
          res.removeHeader('location');
          next(err);
        },
      );
      return res;
    }) as Response['end'];
    next();
  };
}

function chooseWrite(
  req: Request,
  store: KnexSessionStore,
  entrySession: Session | undefined,
  entryContent: string | null,
  wasStored: boolean,
): (() => Promise<void>) | null {
  const session = req.session as Session | undefined;
  const content = describeSession(session);
  if (session === undefined || content === null) return null; // destroyed at sign-out
  const changed = session !== entrySession || content !== entryContent;
  if (changed) return () => saveSession(session);
  return wasStored ? () => store.extendSession(session.id) : null;
}
