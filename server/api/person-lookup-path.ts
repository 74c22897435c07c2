import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
import { readRetryAfter, type HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { describeFailure, hubErrorBody } from '../http/error-handler.ts';
import { fetchPerson, type PersonRecord } from '../services/person-service.ts';
import type { PendingCount, RateLimiter } from '../services/rate-limiter.ts';
import { authenticateCaller, normalizeIp, type ApiCaller } from '../services/token-service.ts';
import {
  appendOutcome,
  buildOutcomeEvent,
  readAnswerFacts,
  unauditedAnswer,
  type OutcomeSource,
} from './audit-outcome.ts';

/** The lookup's path in its one spelling; any other (a query string, a trailing slash) goes to express. */
const PERSON_LOOKUP = /^\/api\/v1\/persons\/([^/?#]+)$/;

interface Answer {
  status: number;
  body: unknown;
  retryAfter?: number;
}

/**
 * The person lookup, the consumer API's most frequent call, answered in front of express: taking
 * a request through the app's middleware and routers and express's response helpers cost about
 * as much CPU as the lookup's reads, checks and audit event together (tests/bench/HISTORY.md).
 * It answers as the express route does: the same security headers, body and audit event, the
 * request counted against its client's rate limits in the transaction that writes the event.
 * Every request it would not answer with the person or a 429 (no token or a bad one, a malformed
 * or unknown ID, a body, HEAD, another spelling of the path) goes to express before anything is
 * counted or written, so express answers and audits the refusal as it always has.
 */
export function answerPersonLookupFirst(
  ctx: AppContext,
  limiter: RateLimiter,
  securityHeaders: OutgoingHttpHeaders,
  app: RequestListener,
): RequestListener {
  const headers: OutgoingHttpHeaders = { ...securityHeaders, 'cache-control': 'no-store' };
  return (req, res) => {
    const nationalId = readLookupId(req);
    if (nationalId === null) {
      app(req, res);
      return;
    }
    answerLookup(ctx, limiter, headers, app, req, res, nationalId).catch((err: unknown) => {
      // Past the point where express could take the request over: no answer is better than a wrong one.
      ctx.logger.error({ err, path: req.url }, 'person lookup failed');
      res.destroy();
    });
  };
}

function readLookupId(req: IncomingMessage): string | null {
  if (req.method !== 'GET') return null;
  // A GET with a body goes through express's body parsers, which refuse a malformed one.
  if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)
    return null;
  const match = PERSON_LOOKUP.exec(req.url ?? '');
  if (match === null) return null;
  try {
    return decodeURIComponent(match[1]!);
  } catch {
    return null;
  }
}

async function answerLookup(
  ctx: AppContext,
  limiter: RateLimiter,
  headers: OutgoingHttpHeaders,
  app: RequestListener,
  req: IncomingMessage,
  res: ServerResponse,
  nationalId: string,
): Promise<void> {
  ctx.reads.endSnapshot();
  const ip = normalizeIp(req.socket.remoteAddress);
  let caller: ApiCaller;
  let count: PendingCount | null;
  let person: PersonRecord;
  try {
    caller = await authenticateCaller(ctx, req.headers.authorization, ip);
    count = ctx.audit.writesInTurns ? limiter.startCount(caller.clientId, caller.limits) : null;
    person = await fetchPerson(ctx, caller, nationalId);
  } catch {
    // Nothing is counted or written yet: express answers the refusal, and audits it.
    app(req, res);
    return;
  }
  const requestId = randomUUID();
  const source: OutcomeSource = { method: 'GET', url: req.url!, client: caller, ip, requestId };
  let answer: Answer;
  try {
    answer = await auditAnswer(ctx, limiter, source, caller, count, person);
  } catch (err) {
    ctx.logger.error({ err, requestId, path: req.url }, 'API outcome not audited');
    answer = { status: 500, body: unauditedAnswer(requestId) };
  }
  writeAnswer(res, headers, requestId, answer);
}

/**
 * Writes the answer's event and returns the answer, or the refusal that replaces it when the
 * client's rate windows have no room: on SQLite the count is taken in the event's transaction,
 * elsewhere it is its own statement first (after the reads, so that a request handed to express
 * is never counted twice).
 */
async function auditAnswer(
  ctx: AppContext,
  limiter: RateLimiter,
  source: OutcomeSource,
  caller: ApiCaller,
  count: PendingCount | null,
  person: PersonRecord,
): Promise<Answer> {
  if (count === null) {
    try {
      await limiter.consume(caller.clientId, caller.limits);
    } catch (err) {
      return auditRefusal(ctx, source, describeFailure(ctx, err, source.requestId, source.url));
    }
  }
  const at = ctx.clock.now();
  const event = buildOutcomeEvent(source, 200, await readAnswerFacts(ctx, 200, person), at);
  const refusal = await appendOutcome(ctx, source, event, count, at);
  return refusal === null ? { status: 200, body: person } : refusalAnswer(refusal);
}

/** A refusal is answered even when its event cannot be written: it carries no personal data. */
async function auditRefusal(ctx: AppContext, source: OutcomeSource, refusal: HubError): Promise<Answer> {
  const event = buildOutcomeEvent(source, refusal.status, { error: refusal.code }, ctx.clock.now());
  try {
    await ctx.audit.append(event);
  } catch (err) {
    ctx.logger.error({ err, requestId: source.requestId, path: source.url }, 'API outcome not audited');
  }
  return refusalAnswer(refusal);
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
