import assert from 'node:assert/strict';
import { parse } from 'csv-parse/sync';
import { PERSON, REGISTRY_TABLES, startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { createPortalUser, signIn, type PortalClient } from '../support/portal-client.ts';

interface AuditRow {
  id: number;
  entity: string | null;
  action: string;
  actor: string;
  target: string | null;
  details: string;
}

const tablesOf = (entity: string) =>
  Object.entries(REGISTRY_TABLES)
    .filter(([, t]) => t.entity === entity)
    .map(([name]) => name);

/** Every string anywhere in an event's details. */
function collectStrings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(collectStrings);
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(collectStrings);
  return [];
}

/**
 * What a custodian or entity admin is promised to see, decided here from the parsed events: the
 * events its entity acted in, the grants and revokes of its tables, and the events that name a
 * column of its tables (`table.column`) as read.
 */
function isAbout(row: AuditRow, entity: string): boolean {
  const tables = tablesOf(entity);
  if (row.entity === entity) return true;
  if ((row.action === 'grant' || row.action === 'revoke') && tables.includes(row.target ?? '')) return true;
  return collectStrings(JSON.parse(row.details)).some(
    (s) => tables.includes(s.split('.')[0] ?? '') && s.includes('.'),
  );
}

const readCsvIds = (text: string) =>
  parse<{ id: string }>(text, { columns: true })
    .map((r) => Number(r.id))
    .sort((a, b) => a - b);

describeEachDatabase('Portal audit screen: each role sees the events about its own entity', (db) => {
  let hub: ApiHub;
  let operator: PortalClient;
  let regCustodian: PortalClient;
  let vehCustodian: PortalClient;
  let nafAdmin: PortalClient;

  const fetchAll = async (): Promise<AuditRow[]> =>
    (
      await hub.ctx
        .knex('hub_audit')
        .orderBy('id')
        .select<AuditRow[]>('id', 'entity', 'action', 'actor', 'target', 'details')
    ).map((r) => ({ ...r, id: Number(r.id) }));

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name']);
    await hub.grant('NAF', 'veh_vehicles');
    await hub.grant('PAY', 'reg_households');
    const naf = await hub.createCaller('NAF');
    const pay = await hub.createCaller('PAY');
    // Enough reads about REG for two pages of the screen.
    for (let i = 0; i < 30; i += 1) {
      assert.equal(
        (await hub.call('GET', `/api/v1/persons/${PERSON.sara}`, { token: naf.token })).status,
        200,
      );
      assert.equal(
        (await hub.call('GET', `/api/v1/persons/${PERSON.omar}`, { token: pay.token })).status,
        200,
      );
    }
    assert.equal((await hub.call('GET', `/api/v1/persons/${PERSON.sara}`, { token: pay.token })).status, 200);
    operator = await signIn(hub, await createPortalUser(hub, 'audit.operator', 'NAF', 'super-admin'));
    regCustodian = await signIn(hub, await createPortalUser(hub, 'audit.reg', 'REG', 'custodian'));
    vehCustodian = await signIn(hub, await createPortalUser(hub, 'audit.veh', 'VEH', 'custodian'));
    nafAdmin = await signIn(hub, await createPortalUser(hub, 'audit.naf', 'NAF', 'entity-admin'));
    await signIn(hub, await createPortalUser(hub, 'audit.pay', 'PAY', 'entity-admin'));
  });
  after(() => hub.close());

  it('exports to each custodian and entity admin exactly the events about its entity, and everything to the super admin', async () => {
    const all = await fetchAll();
    for (const [client, entity] of [
      [regCustodian, 'REG'],
      [vehCustodian, 'VEH'],
      [nafAdmin, 'NAF'],
    ] as const) {
      const csv = await client.get('/audit/export.csv');
      assert.equal(csv.status, 200);
      const expected = all.filter((r) => isAbout(r, entity)).map((r) => r.id);
      assert.ok(expected.length > 0);
      assert.deepEqual(readCsvIds(csv.text), expected, entity);
    }
    const everything = await operator.get('/audit/export.csv');
    assert.deepEqual(
      readCsvIds(everything.text),
      all.map((r) => r.id),
    );

    const byAction = (entity: string, action: string) =>
      all.filter((r) => isAbout(r, entity) && r.action === action).map((r) => r.target);
    assert.deepEqual(byAction('REG', 'grant').sort(), ['reg_households', 'reg_people']);
    assert.deepEqual(byAction('VEH', 'grant'), ['veh_vehicles']);
    assert.ok(
      !all.some((r) => isAbout(r, 'VEH') && r.entity === 'PAY'),
      "PAY's reads of REG data are not VEH's",
    );
  });

  it('filters and pages within the scope, whatever the filter asks for', async () => {
    const all = await fetchAll();
    const first = await regCustodian.get('/audit?action=api.call');
    assert.equal(first.status, 200);
    assert.match(first.text, /data-testid="audit-scope"[^>]*>[^<]*<strong>REG<\/strong>/);
    const idsOn = (html: string) =>
      [...html.matchAll(/<tr><td class="num">(\d+)<\/td>/g)].map((m) => Number(m[1]));
    const page1 = idsOn(first.text);
    assert.equal(page1.length, 50);
    assert.match(first.text, /href="\/audit\?action=api\.call&page=2"/);
    const page2 = idsOn((await regCustodian.get('/audit?action=api.call&page=2')).text);
    const expected = all
      .filter((r) => isAbout(r, 'REG') && r.action === 'api.call')
      .map((r) => r.id)
      .reverse();
    assert.deepEqual([...page1, ...page2], expected);

    // Asking for another entity's events narrows the scope; it never widens it.
    const vehActed = idsOn((await regCustodian.get('/audit?entity=VEH')).text);
    assert.deepEqual(
      vehActed,
      all
        .filter((r) => isAbout(r, 'REG') && r.entity === 'VEH')
        .map((r) => r.id)
        .reverse(),
    );
    assert.ok(all.some((r) => r.entity === 'VEH' && r.action === 'connector.run'));
    const payLogins = idsOn((await nafAdmin.get('/audit?actor=audit.pay')).text);
    assert.deepEqual(payLogins, []);
    const csv = await vehCustodian.get('/audit/export.csv?action=login&actor=audit.reg');
    assert.deepEqual(readCsvIds(csv.text), []);

    assert.equal((await regCustodian.get('/audit?from=yesterday')).status, 400);
    assert.equal((await nafAdmin.get('/audit/export.csv?to=2026-13-45')).status, 400);
  });

  it('answers "who read this person" with the reads about the asking entity only', async () => {
    const readers = async (client: PortalClient) => {
      const res = await client.get(`/audit?national_id=${PERSON.sara}`);
      assert.equal(res.status, 200);
      const table = /data-testid="who-read"[\s\S]*?<\/table>/.exec(res.text)?.[0] ?? '';
      return [
        ...new Set([...table.matchAll(/<tr><td>[^<]*<\/td><td>([A-Z]+)<\/td>/g)].map((m) => m[1])),
      ].sort();
    };
    assert.deepEqual(await readers(operator), ['NAF', 'PAY']);
    assert.deepEqual(await readers(regCustodian), ['NAF', 'PAY']);
    assert.deepEqual(await readers(vehCustodian), ['NAF'], 'PAY read only civil-registry data of her');
    assert.deepEqual(await readers(nafAdmin), ['NAF']);
    assert.equal((await regCustodian.get('/audit?national_id=%27%3B%20drop')).status, 400);
    const asked = await hub.ctx.knex('hub_audit').where({ action: 'audit.who_read', actor: 'audit.veh' });
    assert.equal(asked.length, 1, 'asking is audited');
  });

  it('keeps verifying the chain to the super admin: 403 to the others, and no button', async () => {
    for (const client of [regCustodian, nafAdmin]) {
      const page = await client.get('/audit');
      assert.doesNotMatch(page.text, /action="\/audit\/verify"/);
      const before = await hub.ctx.knex('hub_audit').where({ action: 'audit.verify' });
      const res = await client.post('/audit/verify', {});
      assert.equal(res.status, 403);
      assert.match(res.text, /Your role may not use this page/);
      assert.deepEqual(await hub.ctx.knex('hub_audit').where({ action: 'audit.verify' }), before);
    }
    assert.match((await operator.get('/audit')).text, /action="\/audit\/verify"/);
    assert.match((await operator.post('/audit/verify', {})).text, /data-testid="verify-result"/);
  });
});
