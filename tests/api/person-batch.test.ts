import assert from 'node:assert/strict';
import { disableClient, rotateClientSecret } from '../../server/services/client-service.ts';
import { fetchWhoRead } from '../../warehouse/audit/who-read.ts';
import { verifyAuditChain } from '../../warehouse/audit/verify-audit-chain.ts';
import {
  assertApiError,
  fetchWarehouseFingerprint,
  PERSON,
  REGISTRY_TABLES,
  startApiHub,
  superAdmin,
  UNKNOWN_PERSON,
  type ApiHub,
  type ApiResponse,
} from '../support/api-hub.ts';
import { fetchAuditEvents } from '../support/audit-rows.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { badCheckDigitId, validId } from '../support/registry-fixture.ts';

type Tables = Record<string, Array<Record<string, unknown>>>;

type BatchResult =
  | { national_id: string; status: 200; tables: Tables }
  | { national_id: string; status: 404; error: { code: string; message: string } };

const BATCH_ROUTE = 'POST /api/v1/persons:batch';
const SECOND = 1000;

describeEachDatabase('Consumer API: POST /api/v1/persons:batch', (db) => {
  let hub: ApiHub;

  const single = (token: string, id: string) => hub.call('GET', `/api/v1/persons/${id}`, { token });
  const batch = (token: string | undefined, body: unknown) =>
    hub.call('POST', '/api/v1/persons:batch', { ...(token === undefined ? {} : { token }), json: body });
  const results = (res: ApiResponse): BatchResult[] => {
    assert.equal(res.status, 200, res.text);
    return (res.body as { results: BatchResult[] }).results;
  };
  const batchAudit = () => fetchAuditEvents(hub.ctx.knex, { target: BATCH_ROUTE });

  /** Each result must be what the single lookup of its ID answers: the same record, or the same 404. */
  async function assertSameAsSingle(token: string, ids: string[]): Promise<BatchResult[]> {
    const answered = results(await batch(token, { national_ids: ids }));
    assert.deepEqual(
      answered.map((r) => r.national_id),
      ids,
      'one result per ID, in the order asked',
    );
    for (const result of answered) {
      const alone = await single(token, result.national_id);
      assert.equal(result.status, alone.status, result.national_id);
      const { status: _status, ...rest } = result;
      if (result.status === 200) assert.deepEqual(rest, alone.body, result.national_id);
      else assert.deepEqual({ error: (rest as { error: unknown }).error }, alone.body, result.national_id);
    }
    return answered;
  }

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name', 'gender']);
    await hub.grant('NAF', 'reg_households');
  });

  after(async () => {
    await hub?.close();
  });

  it('answers each ID as its single lookup does, in the order asked: granted columns, own tables, and one 404 for unknown and unreadable persons alike', async () => {
    const { token: naf } = await hub.createCaller('NAF');
    const ids = [PERSON.sara, PERSON.vehicleOnly, UNKNOWN_PERSON, PERSON.mohammad, PERSON.yousef];
    const answered = await assertSameAsSingle(naf, ids);
    assert.deepEqual(
      answered.map((r) => r.status),
      [200, 404, 404, 200, 200],
    );
    const hidden = answered[1]!;
    const unknown = answered[2]!;
    assert.equal(
      JSON.stringify({ ...hidden, national_id: '' }),
      JSON.stringify({ ...unknown, national_id: '' }).replaceAll(UNKNOWN_PERSON, PERSON.vehicleOnly),
      'a person held only where NAF may not read answers exactly as an unknown ID',
    );
    const { token: veh } = await hub.createCaller('VEH');
    const own = await assertSameAsSingle(veh, [PERSON.mohammad, PERSON.vehicleOnly, PERSON.layla]);
    assert.deepEqual(
      own.map((r) => r.status),
      [200, 200, 404],
    );
    // One ID of each kind alone, and the largest batch: 100 IDs, most unknown.
    await assertSameAsSingle(naf, [PERSON.fatima]);
    const hundred = [...Object.values(PERSON), ...Array.from({ length: 93 }, (_, i) => validId(200 + i))];
    assert.equal(hundred.length, 100);
    const big = results(await batch(naf, { national_ids: hundred }));
    assert.deepEqual(
      big.filter((r) => r.status === 200).map((r) => r.national_id),
      [PERSON.mohammad, PERSON.fatima, PERSON.sara, PERSON.omar, PERSON.layla, PERSON.yousef],
    );
  });

  it('refuses a bad body with 400 JSON naming the problem, reading and changing nothing', async () => {
    const { token } = await hub.createCaller('NAF');
    const before = await fetchWarehouseFingerprint(hub.ctx);
    const auditedBefore = (await batchAudit()).length;
    const tooMany = Array.from({ length: 101 }, (_, i) => validId(300 + i));
    const cases: Array<{ body: ApiResponse; message: RegExp }> = [
      {
        body: await hub.call('POST', '/api/v1/persons:batch', {
          token,
          raw: '{"national_ids": [',
          headers: { 'content-type': 'application/json' },
        }),
        message: /not valid JSON/,
      },
      { body: await batch(token, [PERSON.sara]), message: /object/ },
      { body: await batch(token, {}), message: /national_ids/ },
      { body: await batch(token, { national_ids: PERSON.sara }), message: /national_ids/ },
      { body: await batch(token, { national_ids: [] }), message: /national_ids/ },
      { body: await batch(token, { national_ids: tooMany }), message: /national_ids/ },
      { body: await batch(token, { national_ids: [PERSON.sara, 12] }), message: /national_ids\.1/ },
      {
        body: await batch(token, { national_ids: [PERSON.sara, '12345'] }),
        message: /national_ids\.1: .*10 digits/,
      },
      {
        body: await batch(token, { national_ids: [badCheckDigitId(11)] }),
        message: /national_ids\.0: .*check digit/,
      },
      {
        body: await batch(token, { national_ids: [PERSON.sara, PERSON.omar, PERSON.sara] }),
        message: /national_ids\.2: .*more than once/,
      },
      { body: await batch(token, { national_ids: [PERSON.sara], page: 2 }), message: /page/ },
      {
        body: await hub.call('POST', '/api/v1/persons:batch', {
          token,
          raw: `national_ids=${PERSON.sara}`,
          headers: { 'content-type': 'text/plain' },
        }),
        message: /national_ids/,
      },
    ];
    for (const { body, message } of cases) assertApiError(body, 400, 'invalid_request', message);
    assert.deepEqual(await fetchWarehouseFingerprint(hub.ctx), before);
    const audited = (await batchAudit()).slice(auditedBefore);
    assert.equal(audited.length, cases.length, 'every refusal is audited');
    for (const row of audited) {
      assert.equal((JSON.parse(row.details) as { status: number }).status, 400);
      const subjects = await hub.ctx.knex('hub_audit_subjects').where({ audit_id: row.id });
      assert.deepEqual(subjects, [], 'a refused batch names no one as read');
    }
  });

  it('answers 401 JSON without a valid token, and reads no one', async () => {
    for (const token of [undefined, 'not-a-token']) {
      const res = await batch(token, { national_ids: [PERSON.sara] });
      assertApiError(res, 401, 'invalid_token');
      assert.equal(res.text.includes('سارة'), false);
    }
  });

  it('records one audit event per call that names every person returned, and the chain verifies', async () => {
    const { credentials, token } = await hub.createCaller('NAF');
    hub.clock.advance(SECOND);
    const at = hub.clock.now().toISOString();
    const ids = [PERSON.mohammad, PERSON.vehicleOnly, UNKNOWN_PERSON, PERSON.sara];
    results(await batch(token, { national_ids: ids }));
    const events = (await batchAudit()).filter((r) => r.actor === credentials.client_id);
    assert.equal(events.length, 1);
    const details = JSON.parse(events[0]!.details) as Record<string, unknown>;
    assert.equal(details.status, 200);
    assert.deepEqual(details.params, { national_ids: ids });
    assert.equal(details.found, 2);
    assert.deepEqual((details.columns as string[]).sort(), [
      'reg_households.household_id',
      'reg_households.household_size',
      'reg_households.national_id',
      'reg_households.region',
      'reg_people.full_name',
      'reg_people.gender',
      'reg_people.national_id',
    ]);
    const readAt = async (id: string) =>
      (await fetchWhoRead(hub.ctx.knex, id))
        .filter((r) => r.at === at)
        .map((r) => [r.actor, r.action, r.target]);
    for (const id of [PERSON.mohammad, PERSON.sara])
      assert.deepEqual(await readAt(id), [[credentials.client_id, 'api.call', BATCH_ROUTE]], id);
    for (const id of [PERSON.vehicleOnly, UNKNOWN_PERSON]) assert.deepEqual(await readAt(id), [], id);
    assert.equal((await verifyAuditChain(hub.ctx.knex)).ok, true);
  });

  it('a revoke counts on the very next call, with every cache warm', async () => {
    await hub.grant('BATCH_REVOKE', 'reg_people');
    const { token } = await hub.createCaller('BATCH_REVOKE');
    const columnsOf = async () => {
      const [result] = results(await batch(token, { national_ids: [PERSON.sara] }));
      return result!.status === 200 ? Object.keys(result!.tables.reg_people?.[0] ?? {}) : [];
    };
    for (let i = 0; i < 3; i++) assert.deepEqual(await columnsOf(), [...REGISTRY_TABLES.reg_people.columns]);
    await hub.revoke('BATCH_REVOKE', 'reg_people', ['full_name', 'birth_date']);
    assert.deepEqual(await columnsOf(), ['national_id', 'gender', 'marital_status']);
    await hub.revoke('BATCH_REVOKE', 'reg_people');
    assert.deepEqual(results(await batch(token, { national_ids: [PERSON.sara] }))[0]!.status, 404);
    assertApiError(await single(token, PERSON.sara), 404, 'not_found');
  });

  it('a disabled client and a rotated secret are refused on the very next call, with every cache warm', async () => {
    for (const change of ['disable', 'rotate'] as const) {
      const { credentials, token } = await hub.createCaller('NAF');
      for (let i = 0; i < 3; i++) {
        assert.equal((await single(token, PERSON.sara)).status, 200);
        assert.equal((await batch(token, { national_ids: [PERSON.sara] })).status, 200);
      }
      hub.clock.advance(SECOND);
      if (change === 'disable') await disableClient(hub.ctx, credentials.client_id, superAdmin.name);
      else await rotateClientSecret(hub.ctx, credentials.client_id, superAdmin.name);
      const why = change === 'disable' ? /disabled/ : /rotated/;
      assertApiError(await single(token, PERSON.sara), 401, 'invalid_token', why);
      assertApiError(await batch(token, { national_ids: [PERSON.sara] }), 401, 'invalid_token', why);
    }
  });

  it('is documented in OpenAPI with the same tables and columns as the single lookup', async () => {
    const { token } = await hub.createCaller('NAF');
    const res = await hub.call('GET', '/api/v1/openapi.json', { token });
    assert.equal(res.status, 200, res.text);
    type Op = Record<string, unknown>;
    const paths = (res.body as { paths: Record<string, Record<string, Op>> }).paths;
    const batchOp = paths['/api/v1/persons:batch']?.post;
    assert.ok(batchOp, 'the batch path is documented');
    const tablesOf = (op: Op | undefined, pick: (schema: Op) => Op) => {
      const responses = op?.responses as Record<string, { content: Record<string, { schema: Op }> }>;
      const schema = pick(responses['200']!.content['application/json']!.schema);
      return Object.keys((schema.properties as { tables: { properties: Op } }).tables.properties);
    };
    const single = tablesOf(paths['/api/v1/persons/{national_id}']?.get, (s) => s);
    const inBatch = tablesOf(
      batchOp,
      (s) => ((s.properties as Record<string, Op>).results!.items as Op) ?? {},
    );
    assert.deepEqual([...single].sort(), ['reg_households', 'reg_people']);
    assert.deepEqual(inBatch, single);
  });

  it('counts one call as one request against the rate limit, whatever the number of IDs', async () => {
    const { token } = await hub.createCaller('NAF', { ratePerMinute: 2 });
    const five = [PERSON.mohammad, PERSON.fatima, PERSON.sara, PERSON.omar, PERSON.layla];
    assert.equal((await batch(token, { national_ids: five })).status, 200);
    assert.equal((await batch(token, { national_ids: five })).status, 200);
    assertApiError(await batch(token, { national_ids: [PERSON.sara] }), 429, 'rate_limited');
  });
});
