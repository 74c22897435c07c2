import express, { type Request, type RequestHandler, type Response } from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The API's JSON bodies have one parser, whether express reads a body or the frequent calls' own
 * path reads it before express (server/api/frequent-calls-path.ts): a body is read, limited and
 * refused the same way by both.
 */
export const parseJsonBody: RequestHandler = express.json({ limit: '100kb' });

/** The refusal a body got when it was read before express, for express to answer. */
const refusedBeforeExpress = new WeakMap<IncomingMessage, unknown>();

/** As body-parser judges it: a length or a chunked encoding announces a body, even an empty one. */
export const announcesBody = (req: IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;

/**
 * Reads the request's JSON body into `req.body` as express would, and resolves true (also when
 * there is no body). Resolves false, leaving the request to express, when the parser refused the
 * body (malformed, too large, a charset it does not know; the refusal kept for
 * raiseBodyRefusedBeforeExpress) or when the body is of another type, left unread for express's
 * other parsers.
 */
export function readJsonBodyBeforeExpress(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    parseJsonBody(req as Request, res as Response, (err?: unknown) => {
      if (err == null) resolve((req as Request).body !== undefined || !announcesBody(req));
      else {
        refusedBeforeExpress.set(req, err);
        resolve(false);
      }
    });
  });
}

/**
 * Mounted where express parses bodies: a request whose body was refused before express is
 * answered with that refusal, exactly where express's own parser would have refused it. A body
 * read without refusal is in `req.body` already, and express's parser passes a read request by.
 */
export const raiseBodyRefusedBeforeExpress: RequestHandler = (req, _res, next) => {
  next(refusedBeforeExpress.get(req));
};
