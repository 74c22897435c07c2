import assert from 'node:assert/strict';
import { verifyAuditChain } from '../../warehouse/audit/verify-audit-chain.ts';
import { fetchWhoRead } from '../../warehouse/audit/who-read.ts';
import {
  PERSON,
  REGISTRY_TABLES,
  saveQueryAsSuperAdmin,
  startApiHub,
  superAdmin,
  type ApiHub,
} from '../support/api-hub.ts';
import type { ClientCredentials } from '../../server/services/client-service.ts';
import { dropAuditGuards, restoreAuditGuards } from '../support/audit-attacker.ts';
import { countAuditRows, fetchAuditEvents, type AuditEventRow } from '../support/audit-rows.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { runHubCli } from '../support/run-hub-cli.ts';
import { GRANT_TERMS } from '../support/hub-context.ts';

const MINUTE = 60_000;
const qualified = (table: keyof typeof REGISTRY_TABLES, columns: readonly string[]) =>
  columns.map((c) => `${table}.${c}`);
const NAF_PEOPLE_COLUMNS = ['national_id', 'full_name', 'gender'];

describeEachDatabase('Consumer API: audit trail, who read whom, tamper evidence', (db) => {
  let hub: ApiHub;
  let naf: ClientCredentials;
  let narrow: ClientCredentials;
  /** When each read of the scenario happened. */
  const at: Record<'mohammadLookup' | 'menQuery' | 'menPage2' | 'saraLookup' | 'vehicleOnlyLookup', string> =
    {
      mohammadLookup: '',
      menQuery: '',
      menPage2: '',
      saraLookup: '',
      vehicleOnlyLookup: '',
    };

  const auditRows = (where: Partial<AuditEventRow>) => fetchAuditEvents(hub.ctx.knex, where);
  const now = () => hub.clock.now().toISOString();

  // One scenario, read by every test: two clients of two entities look people up and run a query.
  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people', NAF_PEOPLE_COLUMNS);
    await hub.grant('NAF', 'veh_vehicles');
    await hub.grant('NARROW', 'reg_people', ['national_id']);
    await saveQueryAsSuperAdmin(hub, {
      name: 'aud-by-gender',
      entity: 'NAF',
      tables: ['reg_people'],
      columns: ['reg_people.national_id', 'reg_people.full_name'],
      conditions: [{ column: 'reg_people.gender', op: '=', param: 'gender' }],
      params: { gender: { type: 'string', required: true } },
    });
    naf = await hub.createClient('NAF');
    narrow = await hub.createClient('NARROW');
    const token = await hub.fetchToken(naf);
    const narrowToken = await hub.fetchToken(narrow);
    const wrong = await hub.call('POST', '/api/v1/token', {
      json: { grant_type: 'client_credentials', client_id: naf.client_id, client_secret: 'wrong' },
    });
    assert.equal(wrong.status, 401);

    const ok = async (promise: Promise<{ status: number; text: string }>) => {
      const res = await promise;
      assert.equal(res.status, 200, res.text);
    };
    hub.clock.advance(MINUTE);
    at.mohammadLookup = now();
    await ok(hub.call('GET', `/api/v1/persons/${PERSON.mohammad}`, { token }));
    hub.clock.advance(MINUTE);
    at.menQuery = now();
    await ok(
      hub.call('POST', '/api/v1/queries/aud-by-gender', {
        token,
        json: { params: { gender: 'M' }, page_size: 2 },
      }),
    );
    hub.clock.advance(MINUTE);
    at.menPage2 = now();
    await ok(
      hub.call('POST', '/api/v1/queries/aud-by-gender', {
        token,
        json: { params: { gender: 'M' }, page: 2, page_size: 2 },
      }),
    );
    hub.clock.advance(MINUTE);
    at.saraLookup = now();
    await ok(hub.call('GET', `/api/v1/persons/${PERSON.sara}`, { token: narrowToken }));
    hub.clock.advance(MINUTE);
    at.vehicleOnlyLookup = now();
    // NARROW may read no table that holds this person: 404, as for an unknown ID, and no one's data.
    assert.equal(
      (await hub.call('GET', `/api/v1/persons/${PERSON.vehicleOnly}`, { token: narrowToken })).status,
      404,
    );
    // A malformed ID and a refused query read nobody either.
    assert.equal(
      (await hub.call('GET', `/api/v1/persons/${PERSON.layla.slice(0, 9)}`, { token })).status,
      400,
    );
    assert.equal((await hub.call('POST', '/api/v1/queries/aud-by-gender', { token, json: {} })).status, 400);
  });

  after(async () => {
    await hub?.close();
  });

  it('who-read names the entity, client, time and columns of each read of a person, newest first', async () => {
    const rows = await fetchWhoRead(hub.ctx.knex, PERSON.mohammad);
    assert.deepEqual(rows, [
      {
        at: at.menQuery,
        entity: 'NAF',
        actor: naf.client_id,
        action: 'query.run',
        target: 'POST /api/v1/queries/aud-by-gender',
        columns: ['reg_people.national_id', 'reg_people.full_name'],
      },
      {
        at: at.mohammadLookup,
        entity: 'NAF',
        actor: naf.client_id,
        action: 'api.call',
        target: 'GET /api/v1/persons/{national_id}',
        columns: [
          ...qualified('reg_people', NAF_PEOPLE_COLUMNS),
          ...qualified('veh_vehicles', REGISTRY_TABLES.veh_vehicles.columns),
        ],
      },
    ]);
  });

  it('who-read counts only the rows a page returned', async () => {
    // Men in ID order: mohammad, omar on page 1; yousef on page 2.
    const omar = await fetchWhoRead(hub.ctx.knex, PERSON.omar);
    const yousef = await fetchWhoRead(hub.ctx.knex, PERSON.yousef);
    assert.deepEqual(
      omar.map((r) => [r.action, r.at]),
      [['query.run', at.menQuery]],
    );
    assert.deepEqual(
      yousef.map((r) => [r.action, r.at]),
      [['query.run', at.menPage2]],
    );
  });

  it('who-read names the other entity and only the columns it was given', async () => {
    assert.deepEqual(await fetchWhoRead(hub.ctx.knex, PERSON.sara), [
      {
        at: at.saraLookup,
        entity: 'NARROW',
        actor: narrow.client_id,
        action: 'api.call',
        target: 'GET /api/v1/persons/{national_id}',
        columns: ['reg_people.national_id'],
      },
    ]);
  });

  it('who-read lists nothing for people whose data was never returned', async () => {
    assert.deepEqual(await fetchWhoRead(hub.ctx.knex, PERSON.layla), []);
    assert.deepEqual(await fetchWhoRead(hub.ctx.knex, PERSON.fatima), []);
    assert.deepEqual(await fetchWhoRead(hub.ctx.knex, PERSON.vehicleOnly), []);
  });

  it('hub_audit holds token issues and refusals, API calls, query runs, grants and revokes', async () => {
    hub.clock.advance(MINUTE);
    await hub.grant('AUDG', 'veh_vehicles', ['registration_number', 'model_year']);
    await hub.revoke('AUDG', 'veh_vehicles', ['model_year']);

    const issued = await auditRows({ action: 'token.issue', actor: naf.client_id });
    assert.deepEqual(
      issued.map((r) => [r.entity, JSON.parse(r.details) as unknown]),
      [['NAF', { ip: '127.0.0.1' }]],
    );
    const refused = await auditRows({ action: 'token.failed', actor: naf.client_id });
    assert.equal(refused.length, 1);

    const answered = (rows: AuditEventRow[], status: number) =>
      rows.filter((r) => (JSON.parse(r.details) as { status: number }).status === status);
    const calls = answered(await auditRows({ action: 'api.call', actor: naf.client_id }), 200);
    assert.deepEqual(
      calls.map((r) => [r.at, r.entity, r.target, (JSON.parse(r.details) as { params: unknown }).params]),
      [[at.mohammadLookup, 'NAF', 'GET /api/v1/persons/{national_id}', { national_id: PERSON.mohammad }]],
    );
    const runs = answered(await auditRows({ action: 'query.run', actor: naf.client_id }), 200);
    assert.deepEqual(
      runs.map((r) => {
        const details = JSON.parse(r.details) as { params: unknown; page: number; rows: number };
        return [r.at, r.target, details.params, details.page, details.rows];
      }),
      [
        [at.menQuery, 'POST /api/v1/queries/aud-by-gender', { gender: 'M' }, 1, 2],
        [at.menPage2, 'POST /api/v1/queries/aud-by-gender', { gender: 'M' }, 2, 1],
      ],
    );

    // The refused lookup and run are there too, with their error codes, and returned no one's data.
    const refusals = [
      ...answered(await auditRows({ action: 'api.call', actor: naf.client_id }), 400),
      ...answered(await auditRows({ action: 'query.run', actor: naf.client_id }), 400),
    ];
    assert.deepEqual(
      refusals.map((r) => [r.target, (JSON.parse(r.details) as { error: string }).error]),
      [
        ['GET /api/v1/persons/{national_id}', 'invalid_request'],
        ['POST /api/v1/queries/aud-by-gender', 'invalid_parameter'],
      ],
    );

    const changes = await auditRows({ entity: 'AUDG' });
    assert.deepEqual(
      changes.map((r) => [r.action, r.actor, r.target, JSON.parse(r.details) as unknown]),
      [
        [
          'grant',
          superAdmin.name,
          'veh_vehicles',
          {
            columns: ['registration_number', 'model_year'],
            purpose: GRANT_TERMS.purpose,
            legal_basis: GRANT_TERMS.legalBasis,
            expires_at: null,
          },
        ],
        ['revoke', superAdmin.name, 'veh_vehicles', { columns: ['model_year'] }],
      ],
    );
    assert.deepEqual(
      (await auditRows({ entity: 'NAF', action: 'grant' })).map((r) => r.target),
      ['reg_people', 'veh_vehicles'],
    );
  });

  it('verifyAuditChain is ok, names a row whose details were edited in SQL, and so does hub audit verify', async () => {
    const count = await countAuditRows(hub.ctx.knex);
    assert.deepEqual(await verifyAuditChain(hub.ctx.knex), { ok: true, rows: count });
    const cli = (...args: string[]) => runHubCli([...args, '--db', db.url()], { HUB_DATA_DIR: hub.dir });
    const fine = await cli('audit', 'verify');
    assert.equal(fine.code, 0, fine.stderr);

    // Someone hides that NAF read Mohammad's vehicles.
    const [lookup] = await auditRows({ action: 'api.call', actor: naf.client_id });
    assert.ok(lookup);
    const forged = lookup.details.replace(/,"veh_vehicles\.[a-z_]+"/g, '');
    assert.notEqual(forged, lookup.details);
    // As an attacker with DDL rights: the append-only triggers are dropped first.
    await dropAuditGuards(hub.ctx.knex);
    await hub.ctx.knex('hub_audit').where({ id: lookup.id }).update({ details: forged });
    try {
      const report = await verifyAuditChain(hub.ctx.knex);
      assert.equal(report.ok, false);
      const before = await hub.ctx
        .knex('hub_audit')
        .where('id', '<', lookup.id)
        .count({ n: '*' })
        .first<{ n: number | string }>();
      assert.deepEqual(report, {
        ok: false,
        rows: Number(before?.n),
        brokenAt: Number(lookup.id),
        reason: 'row was edited: its hash does not match its contents',
      });

      const broken = await cli('audit', 'verify');
      assert.equal(broken.code, 1, broken.stdout);
      assert.equal(broken.stdout, '');
      assert.match(
        broken.stderr,
        new RegExp(`^hub: audit chain broken at row ${lookup.id}: row was edited`, 'm'),
      );
    } finally {
      await hub.ctx.knex('hub_audit').where({ id: lookup.id }).update({ details: lookup.details });
      await restoreAuditGuards(hub.ctx.knex);
    }
    assert.equal((await verifyAuditChain(hub.ctx.knex)).ok, true);
  });
});
