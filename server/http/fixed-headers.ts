import type { RequestHandler } from 'express';
import { IncomingMessage, ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { Socket } from 'node:net';

/**
 * The headers a middleware that sets the same headers on every answer (helmet) sets, read once by
 * running it on an answer that is never sent, for a path that writes its answers without it.
 */
export function readFixedHeaders(middleware: RequestHandler): OutgoingHttpHeaders {
  const req = new IncomingMessage(new Socket());
  const res = new ServerResponse(req);
  const next: { called: boolean; err?: unknown } = { called: false };
  middleware(req as never, res as never, (err?: unknown) => Object.assign(next, { called: true, err }));
  if (!next.called) throw new Error('the middleware did not pass the request on at once');
  if (next.err !== undefined) throw new Error('the middleware refused the request', { cause: next.err });
  return res.getHeaders();
}
