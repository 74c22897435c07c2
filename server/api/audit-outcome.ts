import type { Request, RequestHandler, Response } from 'express';
import { readAuditNote } from '../../warehouse/audit/audit-note.ts';
import type { AuditEvent } from '../../warehouse/audit/record-audit.ts';
import {
  addReturnedNationalId,
  findNationalIdColumns,
  type NationalIdColumns,
} from '../../warehouse/audit/returned-national-ids.ts';
import type { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { sendHubError } from '../http/error-handler.ts';
import { normalizeIp } from '../services/token-service.ts';
import type { PendingCount } from '../services/rate-limiter.ts';
import { findAuditedClient, takePendingCount, type AuditedClient } from './authenticate.ts';

/** How one API request is named in the log: its action, its route and what it asked for (details). */
interface Endpoint {
  action: 'api.call' | 'query.run';
  target: string;
  asked?: Record<string, unknown>;
}

const MAX_TEXT = 200;
const MAX_PARAMS = 2000;
const clip = (text: string) => (text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text);

/** A caller's parameters as sent, unless they are so large that they would bloat the log. */
function clipJson(value: unknown): unknown {
  const text = JSON.stringify(value) ?? '';
  return text.length > MAX_PARAMS ? { clipped: text.slice(0, MAX_PARAMS) } : value;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * What names a request in its event, read the same way whether express answered it or the
 * frequent calls' own path (server/api/frequent-calls-path.ts) did.
 */
export interface OutcomeSource {
  method: string;
  /** The URL as the client sent it (express's originalUrl). */
  url: string;
  /** The parsed body, where one was parsed. */
  body?: unknown;
  /** The authenticated client, or the verified client that was refused; null without authentication. */
  client: AuditedClient | null;
  ip: string;
  requestId: string;
}

/** The path below /api/v1; req.path cannot be used, since it is the full path again once routing is over. */
function readApiPath(url: string): string {
  const pathname = url.split('?', 1)[0] ?? '';
  return pathname.startsWith('/api/v1') ? pathname.slice('/api/v1'.length) : pathname;
}

/** Classified from the method and path alone, so a request refused before routing is named like one that ran. */
function classifyRequest(req: OutcomeSource): Endpoint {
  const apiPath = readApiPath(req.url);
  const person = /^\/persons\/([^/]+)\/?$/.exec(apiPath);
  if (req.method === 'GET' && person !== null) {
    return {
      action: 'api.call',
      target: 'GET /api/v1/persons/{national_id}',
      asked: { params: { national_id: clip(decodeSegment(person[1]!)) } },
    };
  }
  if (req.method === 'POST' && apiPath === '/persons:batch') {
    const ids = (req.body as { national_ids?: unknown } | undefined)?.national_ids;
    return {
      action: 'api.call',
      target: 'POST /api/v1/persons:batch',
      asked: { params: { national_ids: clipJson(ids ?? null) } },
    };
  }
  const query = /^\/queries\/([^/]+)\/?$/.exec(apiPath);
  if (req.method === 'POST' && query !== null) {
    const body = (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Record<
      string,
      unknown
    >;
    return {
      action: 'query.run',
      target: `POST /api/v1/queries/${clip(decodeSegment(query[1]!))}`,
      asked: {
        params: clipJson(body.params ?? {}),
        page: body.page ?? 1,
        ...(body.page_size === undefined ? {} : { page_size: body.page_size }),
      },
    };
  }
  if (req.method === 'GET' && /^\/queries\/?$/.test(apiPath))
    return { action: 'api.call', target: 'GET /api/v1/queries' };
  if (req.method === 'GET' && apiPath === '/openapi.json')
    return { action: 'api.call', target: 'GET /api/v1/openapi.json' };
  return { action: 'api.call', target: clip(`${req.method} /api/v1${apiPath}`) };
}

/**
 * Adds every national ID an answer carries: in a person record's tables, in each of a batch's
 * results, or in a query page's "table.column" cells. Only the national-ID columns are read.
 */
function collectReturnedIds(columns: NationalIdColumns, body: unknown, ids: Set<string>): void {
  if (typeof body !== 'object' || body === null) return;
  const { tables, rows, results } = body as { tables?: unknown; rows?: unknown; results?: unknown };
  if (Array.isArray(results))
    for (const result of results as unknown[]) collectReturnedIds(columns, result, ids);
  if (typeof tables === 'object' && tables !== null) {
    for (const [table, tableRows] of Object.entries(tables)) {
      if (!Array.isArray(tableRows)) continue;
      const held = columns.ofTable(table);
      for (const row of tableRows as Array<Record<string, unknown>>)
        for (const column of held) addReturnedNationalId(ids, row[column]);
    }
  }
  if (Array.isArray(rows)) {
    for (const row of rows as Array<Record<string, unknown>>) {
      for (const reference in row) if (columns.holds(reference)) addReturnedNationalId(ids, row[reference]);
    }
  }
}

/** What an answer adds to its event: the audit note and returned IDs of a success, the error code of a refusal. */
export interface AnswerFacts {
  details?: Record<string, unknown>;
  subjects?: string[];
  error?: string;
}

/** Read from the answer's body; a success's catalog is needed to find the national IDs it carries. */
export async function readAnswerFacts(ctx: AppContext, status: number, body: unknown): Promise<AnswerFacts> {
  if (status >= 400) {
    const error = (body as { error?: { code?: unknown } } | null)?.error;
    return typeof error?.code === 'string' ? { error: error.code } : {};
  }
  const note = readAuditNote(body);
  const returned = new Set<string>();
  collectReturnedIds(findNationalIdColumns(await ctx.catalog.fetch()), body, returned);
  return { details: note?.details, subjects: [...(note?.subjects ?? []), ...returned] };
}

export function buildOutcomeEvent(
  source: OutcomeSource,
  status: number,
  facts: AnswerFacts,
  at: Date,
): AuditEvent {
  const endpoint = classifyRequest(source);
  const outcome: Record<string, unknown> = { status, ip: source.ip, request_id: source.requestId };
  if (facts.error !== undefined) outcome.error = facts.error;
  return {
    at,
    actor: source.client?.clientId ?? 'anonymous',
    entity: source.client?.entity ?? null,
    action: endpoint.action,
    target: endpoint.target,
    details: { ...outcome, ...endpoint.asked, ...facts.details },
    subjects: facts.subjects ?? [],
  };
}

/**
 * Writes the answer's event; where the request's rate count is still to be taken
 * (takePendingCount), takes it in the same transaction and returns the refusal that replaces
 * the answer when its windows had no room, with the refusal's event written instead.
 */
async function auditAnswer(
  ctx: AppContext,
  req: Request,
  res: Response,
  body: unknown,
  at: Date,
): Promise<HubError | null> {
  const status = res.statusCode;
  const source = describeSource(req, res);
  const event = buildOutcomeEvent(source, status, await readAnswerFacts(ctx, status, body), at);
  return appendOutcome(ctx, source, event, takePendingCount(req), at);
}

function describeSource(req: Request, res: Response): OutcomeSource {
  return {
    method: req.method,
    url: req.originalUrl,
    body: req.body,
    client: findAuditedClient(req),
    ip: normalizeIp(req.socket.remoteAddress),
    requestId: String(res.getHeader('x-request-id') ?? ''),
  };
}

/**
 * Writes a request's event. Where its rate count is still to be taken (SQLite), takes it in the
 * same transaction and, when its windows had no room, writes the refusal's event instead and
 * returns the refusal to answer with.
 */
export async function appendOutcome(
  ctx: AppContext,
  source: OutcomeSource,
  event: AuditEvent,
  count: PendingCount | null,
  at: Date,
): Promise<HubError | null> {
  if (count === null) {
    await ctx.audit.append(event);
    return null;
  }
  const verdict = await ctx.audit.appendDecided({
    decide: (db) => count.take(db),
    eventFor: (v) => (v.counted ? event : buildOutcomeEvent(source, 429, { error: 'rate_limited' }, at)),
  });
  return verdict.counted ? null : verdict.refusal;
}

/** The 500 that replaces an answer whose event could not be written. */
export function unauditedAnswer(requestId: string): { error: { code: string; message: string } } {
  return {
    error: {
      code: 'internal_error',
      message: `the answer could not be audited, so it was not sent (request ${requestId})`,
    },
  };
}

/**
 * Every answer of the authenticated API — 200, 400, 401, 403, 404, 429 and 500 alike — is one
 * audit event, written before the answer leaves: it holds the time the answer was decided, the
 * client (or "anonymous" when authentication failed), the route, the status and error code, and
 * every national ID whose data the answer carries. An answer with personal data whose event
 * cannot be written is replaced by a 500, so no read goes unrecorded. Mounted before the body
 * parsers so that a body refused as malformed is audited too; the token endpoint audits itself
 * (`token.issue` and `token.failed`, in server/services/token-service.ts).
 */
export function buildAuditOutcome(ctx: AppContext): RequestHandler {
  return (req, res, next) => {
    if (req.path === '/token') {
      next();
      return;
    }
    const send = res.json.bind(res);
    res.json = (body: unknown) => {
      const at = ctx.clock.now();
      auditAnswer(ctx, req, res, body, at).then(
        (refusal) => (refusal === null ? send(body) : sendHubError(res, refusal, send)),
        (err: unknown) => {
          ctx.logger.error(
            { err, requestId: res.getHeader('x-request-id'), path: req.path },
            'API outcome not audited',
          );
          if (res.statusCode >= 400) {
            send(body);
            return;
          }
          res.status(500);
          send(unauditedAnswer(String(res.getHeader('x-request-id') ?? '')));
        },
      );
      return res;
    };
    next();
  };
}
