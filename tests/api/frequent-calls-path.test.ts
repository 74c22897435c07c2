import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import helmet from 'helmet';
import { createApiState } from '../../server/api/api-state.ts';
import { answerFrequentCallsFirst } from '../../server/api/frequent-calls-path.ts';
import { buildExpressApp } from '../../server/app.ts';
import { readFixedHeaders } from '../../server/http/fixed-headers.ts';
import {
  callApi,
  PERSON,
  startApiHub,
  UNKNOWN_PERSON,
  type ApiHub,
  type ApiResponse,
  saveQueryAsSuperAdmin,
  sendRawRequest,
  type CallOptions,
} from '../support/api-hub.ts';
import { countAuditRows, fetchAuditEvents } from '../support/audit-rows.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { refuseWrites } from '../support/refuse-writes.ts';

const P = PERSON;

/** Set by the connection or differ on every answer by design; the request id is checked against its event. */
const PER_ANSWER_HEADERS = new Set(['date', 'connection', 'keep-alive', 'x-request-id']);

/** One answer and the events it added to the log, with what differs between any two answers taken out. */
interface Outcome {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  events: unknown[];
}

/** Request ids are fresh for every answer: each event must name its answer's, and then they are set aside. */
function withoutRequestId(text: string, requestId: string): string {
  assert.ok(requestId.length > 0, 'every answer carries a request id');
  return text.split(requestId).join('<request id>');
}

async function readSubjects(hub: ApiHub, auditId: number): Promise<string[]> {
  const rows = await hub.ctx
    .knex('hub_audit_subjects')
    .where({ audit_id: auditId })
    .orderBy('national_id')
    .select<Array<{ national_id: string }>>('national_id');
  return rows.map((r) => r.national_id);
}

/** A GET with a body, which fetch will not send. */
function getWithBody(baseUrl: string, urlPath: string, token: string, body: string): Promise<ApiResponse> {
  return sendRawRequest(
    `${baseUrl}${urlPath}`,
    {
      method: 'GET',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
    },
    body,
  );
}

describeEachDatabase(
  'Consumer API: the person lookup, the batch and a saved query answered in front of express answer as express does',
  (db) => {
    let hub: ApiHub;
    let expressOnly: Server;
    let expressUrl: string;
    let token: string;

    before(async () => {
      hub = await startApiHub(db.url());
      await hub.grant('NAF', 'reg_people', ['national_id', 'full_name', 'marital_status']);
      await hub.grant('NAF', 'veh_vehicles');
      token = (await hub.createCaller('NAF')).token;
      await saveQueryAsSuperAdmin(hub, {
        name: 'path-people',
        entity: 'NAF',
        tables: ['reg_people'],
        columns: ['reg_people.national_id', 'reg_people.full_name'],
        conditions: [{ column: 'reg_people.marital_status', op: '=', param: 'status' }],
        params: { status: { type: 'string' } },
        order_by: [{ column: 'reg_people.national_id', direction: 'asc' }],
        limit: 1000,
      });
      // Saved while NAF could read birth dates, then refused at every run once it cannot.
      await hub.grant('NAF', 'reg_people', ['birth_date']);
      await saveQueryAsSuperAdmin(hub, {
        name: 'path-births',
        entity: 'NAF',
        tables: ['reg_people'],
        columns: ['reg_people.birth_date'],
        order_by: [{ column: 'reg_people.birth_date', direction: 'asc' }],
        limit: 10,
      });
      await hub.revoke('NAF', 'reg_people', ['birth_date']);
      // The same hub (context, warehouse, clock) served by its express app alone.
      expressOnly = createServer(buildExpressApp(hub.ctx)).listen(0, '127.0.0.1');
      await once(expressOnly, 'listening');
      expressUrl = `http://127.0.0.1:${(expressOnly.address() as AddressInfo).port}`;
    });

    after(async () => {
      if (expressOnly !== undefined) {
        expressOnly.closeAllConnections();
        await new Promise((resolve) => expressOnly.close(resolve));
      }
      await hub?.close();
    });

    /** Asks one server, at the clock's present time, and reads what the answer added to the log. */
    async function ask(baseUrl: string, call: (baseUrl: string) => Promise<ApiResponse>): Promise<Outcome> {
      const before = await countAuditRows(hub.ctx.knex);
      const res = await call(baseUrl);
      const requestId = res.headers.get('x-request-id') ?? '';
      const headers: Record<string, string> = {};
      res.headers.forEach((value, name) => {
        if (!PER_ANSWER_HEADERS.has(name)) headers[name] = value;
      });
      const events = [];
      for (const event of await fetchAuditEvents(hub.ctx.knex, {}, before)) {
        const { id, ...rest } = event;
        events.push({
          ...rest,
          details: JSON.parse(withoutRequestId(event.details, requestId)) as unknown,
          subjects: await readSubjects(hub, Number(id)),
        });
      }
      return {
        status: res.status,
        headers,
        body: res.text === '' ? '' : (JSON.parse(withoutRequestId(res.text, requestId)) as unknown),
        events,
      };
    }

    /** The same request to the hub as it serves and to its express app alone, at the same moment. */
    async function compare(call: (baseUrl: string) => Promise<ApiResponse>, events = 1): Promise<Outcome> {
      hub.clock.advance(1000);
      const served = await ask(hub.baseUrl, call);
      const routed = await ask(expressUrl, call);
      assert.deepEqual(served, routed);
      assert.equal(served.events.length, events, 'events an answer');
      return served;
    }

    /** A call, what makes it a refusal, and the status express answers it with. */
    type Refusal = [string, (baseUrl: string) => Promise<ApiResponse>, number];

    /** Each refusal answered and audited as express does, with no one's data read. */
    async function compareRefusals(refusals: Refusal[]): Promise<void> {
      for (const [what, call, status] of refusals) {
        const outcome = await compare(call);
        assert.equal(outcome.status, status, what);
        assert.equal(typeof (outcome.body as { error: { code: string } }).error.code, 'string', what);
        assert.deepEqual((outcome.events[0] as { subjects: string[] }).subjects, [], `${what}: no one read`);
      }
    }

    const get =
      (urlPath: string, options: CallOptions = { token }) =>
      (baseUrl: string) =>
        callApi(baseUrl, 'GET', urlPath, options);

    /** The calls counted against the client in its current minute window. */
    async function countThisMinute(clientId: string): Promise<number> {
      const [window] = await hub.ctx
        .knex('hub_rate_limits')
        .where({ client_id: clientId })
        .select<Array<{ minute_count: number | string }>>('minute_count');
      return Number(window?.minute_count ?? 0);
    }

    /**
     * The hub's listener on a server of its own, with express behind it noting each request the
     * path hands over, and a fresh client whose calls are counted from a fresh minute.
     */
    async function withHandOverWatch(
      use: (watch: {
        baseUrl: string;
        reached: string[];
        token: string;
        minuteCount: () => Promise<number>;
      }) => Promise<void>,
    ): Promise<void> {
      const api = createApiState(hub.ctx);
      const securityHeaders = helmet();
      const app = buildExpressApp(hub.ctx, api, securityHeaders);
      const reached: string[] = [];
      const listener = answerFrequentCallsFirst(
        hub.ctx,
        api.limiter,
        readFixedHeaders(securityHeaders),
        (req, res) => {
          reached.push(`${req.method} ${req.url}`);
          app(req, res);
        },
      );
      const server = createServer(listener).listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const caller = await hub.createCaller('NAF');
        hub.clock.advance(60_000);
        const minuteCount = () => countThisMinute(caller.credentials.client_id);
        await use({
          baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          reached,
          token: caller.token,
          minuteCount,
        });
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    }

    it('answers a person with the same headers, body and audit event, naming the persons read', async () => {
      const outcome = await compare(get(`/api/v1/persons/${P.mohammad}`));
      assert.equal(outcome.status, 200);
      assert.equal(outcome.headers['cache-control'], 'no-store');
      assert.equal(outcome.headers['content-type'], 'application/json; charset=utf-8');
      assert.ok(outcome.headers['content-security-policy'], 'the security headers are there');
      const body = outcome.body as { national_id: string; tables: Record<string, unknown[]> };
      assert.equal(body.national_id, P.mohammad);
      assert.deepEqual(Object.keys(body.tables).sort(), ['reg_people', 'veh_vehicles']);
      assert.deepEqual((outcome.events[0] as { subjects: string[] }).subjects, [P.mohammad]);
    });

    it('answers an ID written with %-escapes as the ID itself', async () => {
      const escaped = [...P.sara].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('');
      const outcome = await compare(get(`/api/v1/persons/${escaped}`));
      assert.equal(outcome.status, 200);
      assert.equal((outcome.body as { national_id: string }).national_id, P.sara);
    });

    it('refuses as express does: an unknown, a malformed or a badly escaped ID, no token, a bad one', async () => {
      const refusals: Array<[string, CallOptions, number, string]> = [
        [`/api/v1/persons/${UNKNOWN_PERSON}`, { token }, 404, 'not_found'],
        [`/api/v1/persons/${P.sara.slice(0, 9)}`, { token }, 400, 'invalid_request'],
        ['/api/v1/persons/%E0%A4%A', { token }, 400, 'invalid_request'],
        [`/api/v1/persons/${P.sara}`, {}, 401, 'invalid_token'],
        [`/api/v1/persons/${P.sara}`, { token: `${token}x` }, 401, 'invalid_token'],
      ];
      for (const [urlPath, options, status, code] of refusals) {
        const outcome = await compare(get(urlPath, options));
        assert.equal(outcome.status, status, urlPath);
        assert.equal((outcome.body as { error: { code: string } }).error.code, code, urlPath);
        assert.deepEqual((outcome.events[0] as { subjects: string[] }).subjects, [], 'no one read');
      }
    });

    it('leaves the other spellings of the path, HEAD and a body to express', async () => {
      const person = (await compare(get(`/api/v1/persons/${P.sara}`))).body;
      for (const urlPath of [`/api/v1/persons/${P.sara}/`, `/api/v1/persons/${P.sara}?fields=all`]) {
        const outcome = await compare(get(urlPath));
        assert.equal(outcome.status, 200, urlPath);
        assert.deepEqual(outcome.body, person, urlPath);
      }
      const head = await compare((baseUrl) =>
        callApi(baseUrl, 'HEAD', `/api/v1/persons/${P.sara}`, { token }),
      );
      assert.equal(head.status, 200);
      const malformed = await compare((baseUrl) =>
        getWithBody(baseUrl, `/api/v1/persons/${P.sara}`, token, '{"national_id": '),
      );
      assert.equal(malformed.status, 400);
      assert.deepEqual(malformed.body, {
        error: { code: 'invalid_request', message: 'request body is not valid JSON' },
      });
    });

    /**
     * A client allowed two calls a minute, its third refused alike by both servers: the same 429,
     * Retry-After and event, and the minute counting the two answered calls and no refused one.
     */
    async function compareOverRateLimit(
      callAs: (token: string) => (baseUrl: string) => Promise<ApiResponse>,
    ): Promise<void> {
      const limited = await hub.createCaller('NAF', { ratePerMinute: 2 });
      const call = callAs(limited.token);
      hub.clock.advance(60_000);
      assert.equal((await call(hub.baseUrl)).status, 200);
      assert.equal((await call(expressUrl)).status, 200);
      const outcome = await compare(call);
      assert.equal(outcome.status, 429);
      assert.ok(Number(outcome.headers['retry-after']) > 0);
      assert.equal((outcome.body as { error: { code: string } }).error.code, 'rate_limited');
      assert.deepEqual((outcome.events[0] as { subjects: string[] }).subjects, []);
      assert.equal(
        await countThisMinute(limited.credentials.client_id),
        2,
        'the two answered calls, and no refused one',
      );
    }

    it('refuses a client over its rate limit with the same 429 and Retry-After, counting each call once', async () => {
      await compareOverRateLimit((own) => get(`/api/v1/persons/${P.sara}`, { token: own }));
    });

    it('answers a person and its refusals without express, hands a token it cannot verify to express, and counts each call once', async () => {
      await withHandOverWatch(async ({ baseUrl, reached, token: own, minuteCount }) => {
        const as = { token: own };
        assert.equal((await get(`/api/v1/persons/${P.sara}`, as)(baseUrl)).status, 200);
        assert.equal((await get(`/api/v1/persons/${UNKNOWN_PERSON}`, as)(baseUrl)).status, 404);
        assert.equal((await get(`/api/v1/persons/${P.sara.slice(0, 9)}`, as)(baseUrl)).status, 400);
        assert.deepEqual(reached, [], 'the person and the refusals are answered in front of express');
        assert.equal((await get(`/api/v1/persons/${P.sara}`, {})(baseUrl)).status, 401);
        assert.deepEqual(reached, [`GET /api/v1/persons/${P.sara}`]);
        assert.equal(await minuteCount(), 3, 'the answer, the 404 and the 400, each once');
      });
    });

    const postJson =
      (urlPath: string, body: string | undefined, options: CallOptions & { type?: string } = { token }) =>
      (baseUrl: string) => {
        const { type = 'application/json', ...call } = options;
        return callApi(baseUrl, 'POST', urlPath, {
          ...call,
          headers: { ...call.headers, ...(type === '' ? {} : { 'content-type': type }) },
          ...(body === undefined ? {} : { raw: body }),
        });
      };
    const postBatch = (body: string | undefined, options?: CallOptions & { type?: string }) =>
      postJson('/api/v1/persons:batch', body, options);
    const batchOf = (ids: unknown) => JSON.stringify({ national_ids: ids });
    const runQuery = (name: string, body: unknown, options?: CallOptions & { type?: string }) =>
      postJson(`/api/v1/queries/${name}`, body === undefined ? undefined : JSON.stringify(body), options);

    it('answers a batch with the same headers, body and audit event, naming the persons read', async () => {
      const outcome = await compare(postBatch(batchOf([P.mohammad, UNKNOWN_PERSON, P.sara])));
      assert.equal(outcome.status, 200);
      assert.equal(outcome.headers['cache-control'], 'no-store');
      assert.ok(outcome.headers['content-security-policy'], 'the security headers are there');
      const { results } = outcome.body as { results: Array<{ national_id: string; status: number }> };
      assert.deepEqual(
        results.map((r) => [r.national_id, r.status]),
        [
          [P.mohammad, 200],
          [UNKNOWN_PERSON, 404],
          [P.sara, 200],
        ],
      );
      const [event] = outcome.events as Array<{ subjects: string[]; details: { params: unknown } }>;
      assert.deepEqual(event!.subjects, [P.mohammad, P.sara].sort());
      assert.deepEqual(event!.details.params, { national_ids: [P.mohammad, UNKNOWN_PERSON, P.sara] });
    });

    it('refuses a batch as express does: its body malformed, too large, of another type or charset, not a list of IDs, or no token', async () => {
      const tooMany = Array.from({ length: 101 }, () => P.sara);
      const refusals: Refusal[] = [
        ['malformed JSON', postBatch('{"national_ids": ['), 400],
        ['JSON that is not an object', postBatch('"national_ids"'), 400],
        ['over 100 KB', postBatch(batchOf([P.sara.repeat(11_000)])), 400],
        [
          'an unknown charset',
          postBatch(batchOf([P.sara]), { token, type: 'application/json; charset=klingon' }),
          400,
        ],
        [
          'a form',
          postBatch(`national_ids=${P.sara}`, { token, type: 'application/x-www-form-urlencoded' }),
          400,
        ],
        ['plain text', postBatch(batchOf([P.sara]), { token, type: 'text/plain' }), 400],
        ['no body', postBatch(undefined, { token, type: '' }), 400],
        ['a string for the list', postBatch(batchOf(P.sara)), 400],
        ['an unknown field', postBatch(JSON.stringify({ national_ids: [P.sara], all: true })), 400],
        ['an empty list', postBatch(batchOf([])), 400],
        ['101 IDs', postBatch(batchOf(tooMany)), 400],
        ['a malformed ID', postBatch(batchOf([P.sara, P.sara.slice(0, 9)])), 400],
        ['an ID twice', postBatch(batchOf([P.sara, P.mohammad, P.sara])), 400],
        ['no token', postBatch(batchOf([P.sara]), {}), 401],
        ['a bad token', postBatch(batchOf([P.sara]), { token: `${token}x` }), 401],
      ];
      await compareRefusals(refusals);
    });

    it('answers a batch and its refusals without express, hands a body it would refuse to express read once, and counts each call once', async () => {
      await withHandOverWatch(async ({ baseUrl, reached, token: own, minuteCount }) => {
        const as = { token: own };
        assert.equal((await postBatch(batchOf([P.sara, P.mohammad]), as)(baseUrl)).status, 200);
        const twice = await postBatch(batchOf([P.sara, P.sara]), as)(baseUrl);
        assert.equal(twice.status, 400);
        assert.match(twice.text, /asked for more than once/);
        assert.deepEqual(reached, [], 'the batch and the refused IDs are answered in front of express');
        const notAList = await postBatch(batchOf(P.sara), as)(baseUrl);
        assert.equal(notAList.status, 400);
        assert.match(notAList.text, /national_ids/, 'express read the body the path had read');
        const malformed = await postBatch('{"national_ids": [', as)(baseUrl);
        assert.deepEqual(malformed.body, {
          error: { code: 'invalid_request', message: 'request body is not valid JSON' },
        });
        const form = await postBatch(`national_ids=${P.sara}`, {
          ...as,
          type: 'application/x-www-form-urlencoded',
        })(baseUrl);
        assert.equal(form.status, 400);
        assert.deepEqual(reached, Array(3).fill('POST /api/v1/persons:batch'));
        // The malformed body is refused before authentication, as express refuses it: never counted.
        assert.equal(await minuteCount(), 4, 'the answer and each refusal after authentication, once');
      });
    });

    it('refuses a batch and a saved query over the client rate limit alike, counting each call once', async () => {
      await compareOverRateLimit((own) => postBatch(batchOf([P.sara]), { token: own }));
      await compareOverRateLimit((own) => runQuery('path-people', {}, { token: own }));
    });

    it('answers the pages of a saved query with the same headers, body and audit event, by page and by next', async () => {
      const first = await compare(runQuery('path-people', { page_size: 2 }));
      assert.equal(first.status, 200);
      assert.equal(first.headers['cache-control'], 'no-store');
      const page = first.body as { rows: unknown[]; next?: string; has_more: boolean };
      assert.equal(page.rows.length, 2);
      assert.ok(page.has_more && page.next !== undefined, 'a page with more rows after it carries next');
      const [event] = first.events as Array<{ action: string; subjects: string[] }>;
      assert.equal(event!.action, 'query.run');
      assert.equal(event!.subjects.length, 2, 'the persons on the page');
      const second = await compare(runQuery('path-people', { next: page.next, page_size: 2 }));
      assert.equal(second.status, 200);
      assert.equal((await compare(runQuery('path-people', { page: 2, page_size: 2 }))).status, 200);
      const widowed = await compare(runQuery('path-people', { params: { status: 'W' } }));
      assert.equal(widowed.status, 200);
      const everyone = await compare(runQuery('path-people', undefined, { token, type: '' }));
      assert.equal(everyone.status, 200, 'no body runs the query with no parameters');
      const text = await compare(
        postJson('/api/v1/queries/path-people', 'page=2', { token, type: 'text/plain' }),
      );
      assert.equal(text.status, 200, 'a body of a type no parser reads is no body');
    });

    it('refuses a saved query as express does: unknown, forbidden, bad parameters, a bad page or token, a malformed body or name', async () => {
      const refusals: Refusal[] = [
        ['an unknown query', runQuery('no-such-query', {}), 404],
        ['a query reading an ungranted column', runQuery('path-births', {}), 403],
        ['an unknown parameter', runQuery('path-people', { params: { colour: 'red' } }), 400],
        ['page 0', runQuery('path-people', { page: 0 }), 400],
        ['a page size over 1000', runQuery('path-people', { page_size: 5000 }), 400],
        ['an unknown field', runQuery('path-people', { pages: 2 }), 400],
        ['a forged next token', runQuery('path-people', { next: 'not-a-token' }), 400],
        ['malformed JSON', postJson('/api/v1/queries/path-people', '{"page": '), 400],
        [
          'a form',
          postJson('/api/v1/queries/path-people', 'page=2', {
            token,
            type: 'application/x-www-form-urlencoded',
          }),
          400,
        ],
        ['a malformed %-escape in the name', runQuery('path-%E0%A4%A', {}), 400],
        ['no token', runQuery('path-people', {}, {}), 401],
      ];
      await compareRefusals(refusals);
    });

    it('answers a saved query and its refusals without express, hands a body it would refuse to express, and counts each call once', async () => {
      await withHandOverWatch(async ({ baseUrl, reached, token: own, minuteCount }) => {
        const as = { token: own };
        assert.equal((await runQuery('path-people', { page_size: 1 }, as)(baseUrl)).status, 200);
        assert.equal((await runQuery('path-births', {}, as)(baseUrl)).status, 403);
        assert.equal((await runQuery('no-such-query', {}, as)(baseUrl)).status, 404);
        assert.deepEqual(reached, [], 'the page and the refused runs are answered in front of express');
        assert.equal((await runQuery('path-people', { page: 0 }, as)(baseUrl)).status, 400);
        assert.equal((await runQuery('path-people', {}, {})(baseUrl)).status, 401);
        assert.deepEqual(reached, Array(2).fill('POST /api/v1/queries/path-people'));
        assert.equal(await minuteCount(), 4, 'the answer, the 403, the 404 and the 400, each once');
      });
    });

    it('sends no personal data when the answer cannot be audited: a 500 in its place, as express sends', async () => {
      const allowAudit = await refuseWrites(
        hub.ctx.knex,
        db.name,
        'hub_audit',
        ['INSERT'],
        'audit refused by the test',
      );
      let outcome: Outcome;
      let batch: Outcome;
      let query: Outcome;
      let unknown: Outcome;
      try {
        outcome = await compare(get(`/api/v1/persons/${P.mohammad}`), 0);
        batch = await compare(postBatch(batchOf([P.mohammad])), 0);
        query = await compare(runQuery('path-people', {}), 0);
        unknown = await compare(get(`/api/v1/persons/${UNKNOWN_PERSON}`), 0);
      } finally {
        await allowAudit();
      }
      assert.equal(outcome.status, 500);
      assert.deepEqual(outcome.body, {
        error: {
          code: 'internal_error',
          message: 'the answer could not be audited, so it was not sent (request <request id>)',
        },
      });
      assert.deepEqual(batch.body, outcome.body, 'the batch likewise');
      assert.deepEqual(query.body, outcome.body, 'and a saved query');
      assert.equal(unknown.status, 404, 'a refusal carries no personal data: it is answered all the same');
      assert.equal((await compare(get(`/api/v1/persons/${P.mohammad}`))).status, 200, 'and serves on');
    });
  },
);
