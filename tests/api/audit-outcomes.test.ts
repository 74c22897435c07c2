import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readConnectorDefinitions } from '../../connectors/definition.ts';
import { runConnector } from '../../connectors/run-connector.ts';
import type { ClientCredentials } from '../../server/services/client-service.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';
import { AuditWriter } from '../../warehouse/audit/audit-writer.ts';
import { verifyAuditChain } from '../../warehouse/audit/verify-audit-chain.ts';
import { fetchWhoRead } from '../../warehouse/audit/who-read.ts';
import {
  PERSON,
  saveQueryAsSuperAdmin,
  startApiHub,
  UNKNOWN_PERSON,
  type ApiHub,
  type ApiResponse,
} from '../support/api-hub.ts';
import { countAuditRows, fetchAuditEvents, type AuditEventRow } from '../support/audit-rows.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { writeDefinition } from '../support/registry-fixture.ts';

/** What the log must say about one answer. */
interface Expected {
  actor: string;
  entity: string | null;
  action: string;
  target: string;
  status: number;
  error?: string;
}

const SECOND = 1000;
const P = PERSON;

// A births register whose rows name two more persons than their own: the mother and the father.
const BIRTHS_CSV = [
  'CHILD,MOTHER,FATHER,REG_NO',
  `${P.omar},${P.fatima},${P.mohammad},B-1`,
  `${P.yousef},${P.layla},,B-2`,
].join('\n');

const birthsDefinition = (dir: string) => ({
  name: 'reg-births',
  entity: 'REG',
  target: { table: 'reg_births', key: ['registration_number'] },
  source: { kind: 'csv', path: path.join(dir, 'births.csv') },
  columns: {
    national_id: { from: 'CHILD', required: true },
    mother_national_id: { from: 'MOTHER', national_id: true },
    father_national_id: { from: 'FATHER', national_id: true },
    registration_number: { from: 'REG_NO', required: true },
  },
});

describeEachDatabase('Consumer API: every outcome is audited, with every national ID that leaves', (db) => {
  let hub: ApiHub;
  let naf: ClientCredentials;
  let token: string;

  /** Makes one request and returns the audit rows it added: there must be exactly one. */
  async function expectAudited(
    request: () => Promise<ApiResponse>,
    expected: Expected,
  ): Promise<AuditEventRow> {
    const before = await countAuditRows(hub.ctx.knex);
    hub.clock.advance(SECOND);
    const at = hub.clock.now().toISOString();
    const res = await request();
    assert.equal(res.status, expected.status, res.text);
    const added = await fetchAuditEvents(hub.ctx.knex, {}, before);
    assert.equal(
      added.length,
      1,
      `one event for ${expected.target} ${expected.status}, got ${JSON.stringify(added)}`,
    );
    const row = added[0]!;
    const details = JSON.parse(row.details) as { status: number; error?: string };
    assert.deepEqual(
      {
        actor: row.actor,
        entity: row.entity,
        action: row.action,
        target: row.target,
        status: details.status,
        ...(details.error === undefined ? {} : { error: details.error }),
      },
      expected,
    );
    assert.equal(row.at, at, 'the event is stamped with the time of the request');
    return row;
  }

  before(async () => {
    hub = await startApiHub(db.url());
    await writeFile(path.join(hub.dir, 'births.csv'), BIRTHS_CSV);
    await writeDefinition(hub.ctx.config.connectorsDir, 'reg-births', birthsDefinition(hub.dir));
    await prepareWarehouse(hub.ctx);
    const births = (await readConnectorDefinitions(hub.ctx.config.connectorsDir)).find(
      (c) => c.name === 'reg-births',
    )!;
    assert.equal((await runConnector(births, hub.ctx, { full: true })).status, 'succeeded');
    await hub.ctx.catalog.fetch();

    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name', 'gender']);
    await hub.grant('NAF', 'reg_births', [
      'national_id',
      'mother_national_id',
      'father_national_id',
      'registration_number',
    ]);
    await saveQueryAsSuperAdmin(hub, {
      name: 'out-births',
      entity: 'NAF',
      tables: ['reg_births'],
      columns: ['reg_births.registration_number', 'reg_births.mother_national_id'],
      conditions: [],
      params: {},
    });
    await saveQueryAsSuperAdmin(hub, {
      name: 'out-gender',
      entity: 'NAF',
      tables: ['reg_people'],
      columns: ['reg_people.full_name', 'reg_people.gender'],
      conditions: [{ column: 'reg_people.gender', op: '=', param: 'gender' }],
      params: { gender: { type: 'string', required: true } },
    });
    naf = await hub.createClient('NAF');
    token = await hub.fetchToken(naf);
  });

  after(async () => {
    await hub?.close();
  });

  const nafExpects = (target: string, status: number, error?: string, action = 'api.call'): Expected => ({
    actor: naf.client_id,
    entity: 'NAF',
    action,
    target,
    status,
    ...(error === undefined ? {} : { error }),
  });
  const PERSON_ROUTE = 'GET /api/v1/persons/{national_id}';

  it('audits 200, 400 and 404 of the person lookup, and 401 without a valid token', async () => {
    await expectAudited(
      () => hub.call('GET', `/api/v1/persons/${P.sara}`, { token }),
      nafExpects(PERSON_ROUTE, 200),
    );
    await expectAudited(
      () => hub.call('GET', `/api/v1/persons/${P.sara.slice(0, 9)}`, { token }),
      nafExpects(PERSON_ROUTE, 400, 'invalid_request'),
    );
    await expectAudited(
      () => hub.call('GET', `/api/v1/persons/${UNKNOWN_PERSON}`, { token }),
      nafExpects(PERSON_ROUTE, 404, 'not_found'),
    );
    const anonymous = {
      actor: 'anonymous',
      entity: null,
      action: 'api.call',
      target: PERSON_ROUTE,
      status: 401,
      error: 'invalid_token',
    };
    await expectAudited(() => hub.call('GET', `/api/v1/persons/${P.sara}`), anonymous);
    await expectAudited(
      () => hub.call('GET', `/api/v1/persons/${P.sara}`, { token: `${token}x` }),
      anonymous,
    );
  });

  it('audits 200, 400, 403 and 404 of saved-query runs, including a body refused as malformed JSON', async () => {
    const route = (name: string) => `POST /api/v1/queries/${name}`;
    await expectAudited(
      () => hub.call('POST', '/api/v1/queries/out-gender', { token, json: { params: { gender: 'F' } } }),
      nafExpects(route('out-gender'), 200, undefined, 'query.run'),
    );
    await expectAudited(
      () => hub.call('POST', '/api/v1/queries/out-gender', { token, json: { params: {} } }),
      nafExpects(route('out-gender'), 400, 'invalid_parameter', 'query.run'),
    );
    await expectAudited(
      () =>
        hub.call('POST', '/api/v1/queries/out-gender', {
          token,
          raw: '{"params": ',
          headers: { 'content-type': 'application/json' },
        }),
      // Refused before authentication, so the event names the address, not a client.
      {
        ...nafExpects(route('out-gender'), 400, 'invalid_request', 'query.run'),
        actor: 'anonymous',
        entity: null,
      },
    );
    await expectAudited(
      () => hub.call('POST', '/api/v1/queries/no-such-query', { token, json: {} }),
      nafExpects(route('no-such-query'), 404, 'not_found', 'query.run'),
    );
    await hub.revoke('NAF', 'reg_people', ['gender']);
    try {
      await expectAudited(
        () => hub.call('POST', '/api/v1/queries/out-gender', { token, json: { params: { gender: 'F' } } }),
        nafExpects(route('out-gender'), 403, 'column_not_granted', 'query.run'),
      );
    } finally {
      await hub.grant('NAF', 'reg_people', ['gender']);
    }
  });

  it('audits reads of the query list, the OpenAPI document and unknown API paths', async () => {
    await expectAudited(
      () => hub.call('GET', '/api/v1/queries', { token }),
      nafExpects('GET /api/v1/queries', 200),
    );
    await expectAudited(
      () => hub.call('GET', '/api/v1/openapi.json', { token }),
      nafExpects('GET /api/v1/openapi.json', 200),
    );
    await expectAudited(
      () => hub.call('GET', '/api/v1/nothing-here', { token }),
      nafExpects('GET /api/v1/nothing-here', 404, 'not_found'),
    );
    await expectAudited(() => hub.call('GET', '/api/v1/openapi.json'), {
      actor: 'anonymous',
      entity: null,
      action: 'api.call',
      target: 'GET /api/v1/openapi.json',
      status: 401,
      error: 'invalid_token',
    });
  });

  it('audits 403 (address no longer allowed) and 429 (rate limit) on every consumer endpoint', async () => {
    const endpoints = (t: string): Array<[string, string, () => Promise<ApiResponse>]> => [
      [PERSON_ROUTE, 'api.call', () => hub.call('GET', `/api/v1/persons/${P.sara}`, { token: t })],
      ['GET /api/v1/queries', 'api.call', () => hub.call('GET', '/api/v1/queries', { token: t })],
      [
        'POST /api/v1/queries/out-gender',
        'query.run',
        () => hub.call('POST', '/api/v1/queries/out-gender', { token: t, json: { params: { gender: 'M' } } }),
      ],
      ['GET /api/v1/openapi.json', 'api.call', () => hub.call('GET', '/api/v1/openapi.json', { token: t })],
    ];

    const moved = await hub.createCaller('NAF');
    await hub.ctx
      .knex('hub_clients')
      .where({ client_id: moved.credentials.client_id })
      .update({ allowed_ips: '["192.0.2.1"]' });
    for (const [target, action, call] of endpoints(moved.token)) {
      await expectAudited(call, {
        actor: moved.credentials.client_id,
        entity: 'NAF',
        action,
        target,
        status: 403,
        error: 'address_not_allowed',
      });
    }

    const limited = await hub.createCaller('NAF', { ratePerMinute: 1 });
    for (const [target, action, call] of endpoints(limited.token)) {
      // Each endpoint in a new minute: the first call passes, the second is refused.
      hub.clock.advance(60 * SECOND);
      assert.equal((await call()).status, 200);
      const row = await expectAudited(call, {
        actor: limited.credentials.client_id,
        entity: 'NAF',
        action,
        target,
        status: 429,
        error: 'rate_limited',
      });
      assert.doesNotMatch(row.details, /"columns"/);
    }
  });

  it('audits requests whose text the log columns could not hold, without failing the other events of their group', async () => {
    await expectAudited(
      () => hub.call('POST', '/api/v1/queries/out%00gender', { token, json: { params: { gender: 'F' } } }),
      nafExpects('POST /api/v1/queries/out\uFFFDgender', 404, 'not_found', 'query.run'),
    );
    const huge = { gender: 'F', padding: 'x'.repeat(50_000) };
    const row = await expectAudited(
      () => hub.call('POST', '/api/v1/queries/out-gender', { token, json: { params: huge } }),
      nafExpects('POST /api/v1/queries/out-gender', 400, 'invalid_parameter', 'query.run'),
    );
    assert.ok(row.details.length < 3000, `details of ${row.details.length} characters`);
    // Sent together, a poisoned request and a good one are both answered and both audited.
    const before = await countAuditRows(hub.ctx.knex);
    const [bad, good] = await Promise.all([
      hub.call('GET', `/api/v1/persons/${'9'.repeat(500)}%00`, { token }),
      hub.call('GET', `/api/v1/persons/${P.sara}`, { token }),
    ]);
    assert.deepEqual([bad.status, good.status], [400, 200]);
    assert.equal(await countAuditRows(hub.ctx.knex), before + 2);
  });

  it("counts every national ID that leaves as a read: a mother's and a father's in a person record", async () => {
    hub.clock.advance(SECOND);
    const res = await hub.call('GET', `/api/v1/persons/${P.omar}`, { token });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((res.body as { tables: Record<string, unknown> }).tables.reg_births, [
      {
        national_id: P.omar,
        mother_national_id: P.fatima,
        father_national_id: P.mohammad,
        registration_number: 'B-1',
      },
    ]);
    const lookup = (rows: Awaited<ReturnType<typeof fetchWhoRead>>) =>
      rows.filter((r) => r.at === hub.clock.now().toISOString()).map((r) => [r.actor, r.action, r.target]);
    for (const person of [P.omar, P.fatima, P.mohammad]) {
      assert.deepEqual(
        lookup(await fetchWhoRead(hub.ctx.knex, person)),
        [[naf.client_id, 'api.call', PERSON_ROUTE]],
        person,
      );
    }
    assert.deepEqual(lookup(await fetchWhoRead(hub.ctx.knex, P.layla)), []);
  });

  it('counts the persons of the returned rows and every ID in a national-ID column of a query page', async () => {
    hub.clock.advance(SECOND);
    const res = await hub.call('POST', '/api/v1/queries/out-births', { token, json: { page_size: 1 } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((res.body as { rows: unknown[] }).rows, [
      { 'reg_births.registration_number': 'B-1', 'reg_births.mother_national_id': P.fatima },
    ]);
    const runNow = async (person: string) =>
      (await fetchWhoRead(hub.ctx.knex, person))
        .filter((r) => r.at === hub.clock.now().toISOString())
        .map((r) => r.action);
    // The child (whose row it is, though its ID was not selected) and the mother; not the father, not page 2.
    assert.deepEqual(await runNow(P.omar), ['query.run']);
    assert.deepEqual(await runNow(P.fatima), ['query.run']);
    assert.deepEqual(await runNow(P.mohammad), []);
    assert.deepEqual(await runNow(P.yousef), []);
    assert.deepEqual(await runNow(P.layla), []);
  });

  it('refused answers name no one as read, and the chain of all these events verifies', async () => {
    const refused = await hub.ctx
      .knex('hub_audit as a')
      .join('hub_audit_subjects as s', 's.audit_id', 'a.id')
      .where('a.details', 'not like', '%"status":200%')
      .count<Array<{ n: number | string }>>({ n: '*' });
    assert.equal(Number(refused[0]?.n), 0);
    assert.equal((await verifyAuditChain(hub.ctx.knex)).ok, true);
  });

  it('stamps an event with the time it happened, not the time its group is written', async () => {
    const writer = new AuditWriter(hub.ctx.knex, hub.clock, { gatherMs: 50 });
    const happened = hub.clock.now().toISOString();
    const appended = writer.append({ actor: 'test', action: 'api.call', target: 'event-time' });
    // The group is written after the gather time; the clock has moved on by then.
    hub.clock.advance(3_600 * SECOND);
    await appended;
    await writer.close();
    const row = await hub.ctx.knex('hub_audit').where({ target: 'event-time' }).first<{ at: string }>('at');
    assert.equal(row.at, happened);
  });
});
