import assert from 'node:assert/strict';
import { fetchGrants } from '../../privileges/grants.ts';
import { saveQuery } from '../../server/services/query-service.ts';
import { startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { createPortalUser, signIn, type PortalClient } from '../support/portal-client.ts';

const TERMS = { purpose: 'Means test for cash transfers', legal_basis: 'Aid Fund Law art. 7' };

describeEachDatabase('Portal privilege matrices', (db) => {
  let hub: ApiHub;
  let custodian: PortalClient;

  const grantsOf = async (entity: string) =>
    (await fetchGrants(hub.ctx, { entity })).map((g) => `${g.table}.${g.column ?? '*'}`).sort();
  const ticksOn = (html: string) =>
    [...html.matchAll(/name="grant" value="([^"]+)"[^>]*checked/g)].map((m) => m[1]).sort();

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name']);
    await hub.grant('PAY', 'veh_vehicles');
    custodian = await signIn(hub, await createPortalUser(hub, 'reg.custodian', 'REG', 'custodian'));
  });
  after(() => hub.close());

  it("shows a custodian its own tables × the consuming entities, ticked as granted, labels in the page's language", async () => {
    const page = await custodian.get('/privileges/tables');
    assert.equal(page.status, 200);
    assert.match(page.text, /reg_people/);
    assert.match(page.text, /reg_households/);
    assert.doesNotMatch(page.text, /veh_vehicles/, "another custodian's table");
    assert.doesNotMatch(page.text, /value="REG:/, 'the owner has no cell');
    assert.deepEqual(ticksOn(page.text), []);
    assert.match(
      page.text,
      /NAF:reg_people"[^>]*>\s*<a href="\/privileges\/columns\/reg_people"/,
      'a table granted in part points to its columns',
    );
    const ar = await custodian.get('/privileges/tables?lang=ar');
    assert.match(ar.text, /الأشخاص/);
    await custodian.get('/privileges/tables?lang=en');
  });

  it('refuses a new grant without a purpose and a legal basis, changing nothing', async () => {
    await custodian.get('/privileges/tables');
    const res = await custodian.post('/privileges/tables', {
      grant: 'NAF:reg_households',
      purpose: ' ',
      legal_basis: '',
    });
    assert.equal(res.status, 400);
    assert.match(res.text, /A new grant needs/);
    assert.deepEqual(await grantsOf('NAF'), ['reg_people.full_name', 'reg_people.national_id']);
    const past = await custodian.post('/privileges/tables', {
      grant: 'NAF:reg_households',
      ...TERMS,
      expires_at: '2001-01-01',
    });
    assert.equal(past.status, 400);
    assert.deepEqual(await grantsOf('NAF'), ['reg_people.full_name', 'reg_people.national_id']);
  });

  it('grants a whole table with its purpose, legal basis and expiry, through the grant service and its audit', async () => {
    await custodian.get('/privileges/tables');
    const res = await custodian.post('/privileges/tables', {
      grant: 'NAF:reg_households',
      ...TERMS,
      expires_at: '2026-03-10',
    });
    assert.equal(res.location, '/privileges/tables?saved=1');
    const grant = await hub.ctx
      .knex('hub_grants')
      .where({ entity: 'NAF', table_name: 'reg_households' })
      .first<{ column_name: string; purpose: string; legal_basis: string; expires_at: string }>();
    assert.equal(grant?.column_name, '', 'the whole table');
    assert.equal(grant?.purpose, TERMS.purpose);
    assert.equal(grant?.legal_basis, TERMS.legal_basis);
    assert.equal(grant?.expires_at.slice(0, 10), '2026-03-10');
    const audit = await hub.ctx
      .knex('hub_audit')
      .where({ action: 'grant', actor: 'reg.custodian' })
      .select<Array<{ details: string }>>('details');
    assert.match(String(audit[0]?.details), /Aid Fund Law/);
    const home = await custodian.get('/');
    assert.match(home.text, /Grant expiring/, 'an expiry within 14 days is an alert on the home page');
  });

  it('grants and revokes single columns in the column matrix', async () => {
    const page = await custodian.get('/privileges/columns/reg_people');
    assert.deepEqual(ticksOn(page.text), ['NAF:full_name', 'NAF:national_id']);
    const res = await custodian.post('/privileges/columns/reg_people', {
      grant: ['NAF:national_id', 'NAF:full_name', 'NAF:gender', 'PAY:national_id'],
      ...TERMS,
    });
    assert.equal(res.location, '/privileges/columns/reg_people?saved=1');
    assert.deepEqual(await grantsOf('NAF'), [
      'reg_households.*',
      'reg_people.full_name',
      'reg_people.gender',
      'reg_people.national_id',
    ]);
    assert.deepEqual(await grantsOf('PAY'), ['reg_people.national_id', 'veh_vehicles.*']);
  });

  it('shows first which saved queries a revoke would break, and revokes only when confirmed', async () => {
    await saveQuery(
      hub.ctx,
      {
        name: 'naf-by-gender',
        entity: 'NAF',
        description: 'd',
        tables: ['reg_people'],
        columns: ['reg_people.national_id', 'reg_people.gender'],
        conditions: [],
        limit: 10,
      },
      'test',
    );
    const nafClient = await hub.createClient('NAF');
    await custodian.get('/privileges/columns/reg_people');
    const ask = await custodian.post('/privileges/columns/reg_people', {
      grant: ['NAF:national_id', 'NAF:full_name', 'PAY:national_id'],
    });
    assert.equal(ask.status, 200);
    assert.match(ask.text, /data-testid="broken-queries">[\s\S]*naf-by-gender[\s\S]*reg_people\.gender/);
    // The same answer as `hub revoke --dry-run`: the consumer's active clients lose the access.
    assert.match(
      ask.text,
      new RegExp(`data-testid="broken-clients">[\\s\\S]*${nafClient.client_id}[\\s\\S]*reg_people`),
    );
    assert.ok(
      (await grantsOf('NAF')).includes('reg_people.gender'),
      'nothing revoked before the confirmation',
    );
    const confirmed = await custodian.post('/privileges/columns/reg_people', {
      grant: ['NAF:national_id', 'NAF:full_name', 'PAY:national_id'],
      confirm: 'yes',
    });
    assert.equal(confirmed.location, '/privileges/columns/reg_people?saved=1');
    assert.ok(!(await grantsOf('NAF')).includes('reg_people.gender'));
  });

  it("answers 403 to a custodian opening or posting another entity's table, and to an entity admin, changing nothing", async () => {
    const other = await custodian.get('/privileges/columns/veh_vehicles');
    assert.equal(other.status, 403);
    await custodian.get('/privileges/tables');
    const before = await grantsOf('PAY');
    const forged = await custodian.post('/privileges/columns/veh_vehicles', { grant: [] });
    assert.equal(forged.status, 403);
    assert.deepEqual(await grantsOf('PAY'), before);
    const admin = await signIn(hub, await createPortalUser(hub, 'naf.entity.admin', 'NAF', 'entity-admin'));
    for (const path of ['/privileges/tables', '/privileges/columns', '/privileges/columns/reg_people']) {
      const res = await admin.get(path);
      assert.equal(res.status, 403, path);
      assert.match(res.text, /Your role may not use this page/);
    }
    await admin.get('/');
    assert.equal((await admin.post('/privileges/tables', { grant: 'NAF:reg_people', ...TERMS })).status, 403);
    assert.deepEqual(await grantsOf('PAY'), before);
    assert.doesNotMatch((await admin.get('/')).text, /href="\/privileges\/tables"/, 'not in the menu either');
  });
});
