import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
import { HubError, readRetryAfter } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { describeFailure, hubErrorBody } from '../http/error-handler.ts';
import { announcesBody, readJsonBodyBeforeExpress } from '../http/json-body.ts';
import { fetchPerson, fetchPersonBatch } from '../services/person-service.ts';
import { runSavedQuery } from '../services/query-service.ts';
import type { PendingCount, RateLimiter } from '../services/rate-limiter.ts';
import { authenticateCaller, normalizeIp, type ApiCaller } from '../services/token-service.ts';
import {
  appendOutcome,
  buildOutcomeEvent,
  readAnswerFacts,
  unauditedAnswer,
  type OutcomeSource,
} from './audit-outcome.ts';
import { batchRequest } from './person-routes.ts';
import { queryRunRequest } from './query-routes.ts';

/** The lookup's path in its one spelling; any other (a query string, a trailing slash) goes to express. */
const PERSON_LOOKUP = /^\/api\/v1\/persons\/([^/?#]+)$/;
/** The batch's and a saved query's paths, likewise in their one spelling. */
const PERSON_BATCH = '/api/v1/persons:batch';
const QUERY_RUN = /^\/api\/v1\/queries\/([^/?#]+)$/;

interface Answer {
  status: number;
  body: unknown;
  retryAfter?: number;
}

/** A call this path answers: what it asked for and how its answer is read. */
interface FrequentCall {
  /** The parsed body, which the event records as express's would; none for a lookup. */
  body?: unknown;
  /** The answer with its audit note; it throws for every refusal, which express then answers. */
  fetch(caller: ApiCaller): Promise<object>;
}

/** A POST this path answers, once its body is read: the call, or null when the route would refuse the body. */
type ReadPostedCall = (body: unknown) => FrequentCall | null;

/**
 * The consumer API's most frequent calls (the person lookup, the batch lookup and a saved
 * query's page) answered in front of express: taking a request through the app's middleware
 * and routers and express's response helpers cost about as much CPU as the lookup's reads,
 * checks and audit event together (tests/bench/HISTORY.md). They answer as the express routes
 * do: the same security headers, body and audit event, the request counted against its client's
 * rate limits in the transaction that writes the event. So are the refusals the call itself makes
 * once its caller is known (an unknown person, a malformed ID, an unknown or forbidden query, a
 * bad parameter or page token), as express's error handler answers them. Every other request (no
 * token or a bad one, a body that is malformed or that the route's schema refuses, HEAD, another
 * spelling of the path, an error that is not a refusal) goes to express before anything is
 * counted or written, so express answers and audits it as it always has. A body is read by
 * express's own JSON parser (server/http/json-body.ts) and handed over already read.
 */
export function answerFrequentCallsFirst(
  ctx: AppContext,
  limiter: RateLimiter,
  securityHeaders: OutgoingHttpHeaders,
  app: RequestListener,
): RequestListener {
  const headers: OutgoingHttpHeaders = { ...securityHeaders, 'cache-control': 'no-store' };
  const answer = (req: IncomingMessage, res: ServerResponse, call: FrequentCall | null) => {
    if (call === null) app(req, res);
    else answerCall(ctx, limiter, headers, app, req, res, call).catch((err: unknown) => fail(req, res, err));
  };
  // Past the point where express could take the request over: no answer is better than a wrong one.
  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown) => {
    ctx.logger.error({ err, path: req.url }, 'API call failed');
    res.destroy();
  };
  return (req, res) => {
    const posted = matchPostedCall(ctx, req);
    if (posted !== null) {
      readJsonBodyBeforeExpress(req, res).then(
        (read) => answer(req, res, read ? posted((req as IncomingMessage & { body?: unknown }).body) : null),
        (err: unknown) => fail(req, res, err),
      );
      return;
    }
    const nationalId = readLookupId(req);
    answer(
      req,
      res,
      nationalId === null ? null : { fetch: (caller) => fetchPerson(ctx, caller, nationalId) },
    );
  };
}

function readLookupId(req: IncomingMessage): string | null {
  if (req.method !== 'GET') return null;
  // A GET with a body goes through express's body parsers, which refuse a malformed one.
  if (announcesBody(req)) return null;
  const match = PERSON_LOOKUP.exec(req.url ?? '');
  return match === null ? null : decodePathSegment(match[1]!);
}

/** A malformed %-escape is express's to refuse. */
function decodePathSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** The batch or a saved query's run, read from the body as its express route reads it. */
function matchPostedCall(ctx: AppContext, req: IncomingMessage): ReadPostedCall | null {
  if (req.method !== 'POST') return null;
  if (req.url === PERSON_BATCH)
    return (body) => {
      const asked = batchRequest.safeParse(body);
      if (!asked.success) return null;
      return { body, fetch: (caller) => fetchPersonBatch(ctx, caller, asked.data.national_ids) };
    };
  const query = QUERY_RUN.exec(req.url ?? '');
  const name = query === null ? null : decodePathSegment(query[1]!);
  if (name === null) return null;
  return (body) => {
    const asked = queryRunRequest.safeParse(body ?? {});
    if (!asked.success) return null;
    return { body, fetch: (caller) => runSavedQuery(ctx, caller, name, asked.data) };
  };
}

async function answerCall(
  ctx: AppContext,
  limiter: RateLimiter,
  headers: OutgoingHttpHeaders,
  app: RequestListener,
  req: IncomingMessage,
  res: ServerResponse,
  call: FrequentCall,
): Promise<void> {
  ctx.reads.endSnapshot();
  const ip = normalizeIp(req.socket.remoteAddress);
  let caller: ApiCaller;
  let count: PendingCount | null;
  let found: Answer;
  try {
    caller = await authenticateCaller(ctx, req.headers.authorization, ip);
    count = ctx.audit.writesInTurns ? limiter.startCount(caller.clientId, caller.limits) : null;
    found = await fetchAnswer(call, caller);
  } catch {
    // Nothing is counted or written yet: express answers the refusal, and audits it.
    app(req, res);
    return;
  }
  const requestId = randomUUID();
  const source: OutcomeSource = {
    method: req.method!,
    url: req.url!,
    ...(call.body === undefined ? {} : { body: call.body }),
    client: caller,
    ip,
    requestId,
  };
  // Elsewhere than SQLite the count is a statement of its own, taken after the reads so that a
  // request handed to express is never counted twice; a full window's 429 replaces the answer.
  if (count === null) found = await countApart(ctx, limiter, caller, source, found);
  let answer: Answer;
  try {
    answer = await auditAnswer(ctx, source, count, found);
  } catch (err) {
    ctx.logger.error({ err, requestId, path: req.url }, 'API outcome not audited');
    // A refusal carries no personal data: it is sent all the same, as express sends it.
    answer = found.status >= 400 ? found : { status: 500, body: unauditedAnswer(requestId) };
  }
  writeAnswer(res, headers, requestId, answer);
}

/**
 * The data asked for, or the refusal the call made of it (an unknown person, a malformed ID, a
 * forbidden query, a bad parameter): the caller is known by then, and the refusal is answered,
 * counted and audited here as express would. Anything else (an outage, a bug) is thrown, for
 * express to answer.
 */
async function fetchAnswer(call: FrequentCall, caller: ApiCaller): Promise<Answer> {
  try {
    return { status: 200, body: await call.fetch(caller) };
  } catch (err) {
    if (err instanceof HubError && err.status >= 400 && err.status < 500) return refusalAnswer(err);
    throw err;
  }
}

/** The answer, or the refusal that replaces it when the client's rate windows have no room. */
async function countApart(
  ctx: AppContext,
  limiter: RateLimiter,
  caller: ApiCaller,
  source: OutcomeSource,
  found: Answer,
): Promise<Answer> {
  try {
    await limiter.consume(caller.clientId, caller.limits);
    return found;
  } catch (err) {
    return refusalAnswer(describeFailure(ctx, err, source.requestId, source.url));
  }
}

/**
 * Writes the answer's event and returns the answer, or, on SQLite, where the request's count is
 * taken in the event's transaction, the refusal that replaces it when the windows had no room.
 */
async function auditAnswer(
  ctx: AppContext,
  source: OutcomeSource,
  count: PendingCount | null,
  found: Answer,
): Promise<Answer> {
  const at = ctx.clock.now();
  const facts = await readAnswerFacts(ctx, found.status, found.body);
  const refusal = await appendOutcome(
    ctx,
    source,
    buildOutcomeEvent(source, found.status, facts, at),
    count,
    at,
  );
  return refusal === null ? found : refusalAnswer(refusal);
}

function refusalAnswer(refusal: HubError): Answer {
  return {
    status: refusal.status,
    body: hubErrorBody(refusal),
    retryAfter: readRetryAfter(refusal),
  };
}

function writeAnswer(
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  requestId: string,
  answer: Answer,
): void {
  const text = JSON.stringify(answer.body);
  res.writeHead(answer.status, {
    ...headers,
    'x-request-id': requestId,
    ...(answer.retryAfter === undefined ? {} : { 'retry-after': String(answer.retryAfter) }),
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
