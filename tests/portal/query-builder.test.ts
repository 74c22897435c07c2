import assert from 'node:assert/strict';
import { PERSON, startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { createPortalUser, signIn, type PortalClient } from '../support/portal-client.ts';

describeEachDatabase('Portal query builder and saved queries', (db) => {
  let hub: ApiHub;
  let admin: PortalClient;

  const widowsForm = (action: string, extra: Record<string, string | string[]> = {}) => ({
    tables: ['reg_people', 'reg_households'],
    join: 'inner',
    columns: ['reg_people.national_id', 'reg_people.full_name', 'reg_households.region'],
    cond_column_0: 'reg_people.marital_status',
    cond_op_0: '=',
    cond_mode_0: 'value',
    cond_value_0: 'W',
    cond_column_1: 'reg_people.birth_date',
    cond_op_1: '<=',
    cond_mode_1: 'param',
    cond_param_1: 'born_before',
    pval_born_before: '1990-01-01',
    sort_column: 'reg_people.full_name',
    sort_direction: 'asc',
    limit: '50',
    action,
    ...extra,
  });

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name', 'birth_date', 'marital_status']);
    await hub.grant('NAF', 'reg_households');
    admin = await signIn(hub, await createPortalUser(hub, 'naf.builder', 'NAF', 'entity-admin'));
  });
  after(() => hub.close());

  it('offers only the tables and columns granted to the entity', async () => {
    const page = await admin.get('/queries/builder');
    assert.equal(page.status, 200);
    assert.match(page.text, /value="reg_people"/);
    assert.match(page.text, /value="reg_households"/);
    assert.doesNotMatch(page.text, /value="veh_vehicles"/);
    const columns = await admin.post('/queries/builder', {
      tables: 'reg_people',
      action: 'check_all:reg_people',
    });
    const ticked = [...columns.text.matchAll(/name="columns" value="([^"]+)"[^>]*checked/g)].map((m) => m[1]);
    assert.deepEqual(ticked, [
      'reg_people.national_id',
      'reg_people.full_name',
      'reg_people.birth_date',
      'reg_people.marital_status',
    ]);
  });

  it('shows the SQL it generates, with values as bindings', async () => {
    await admin.get('/queries/builder');
    const res = await admin.post('/queries/builder', widowsForm('generate'));
    assert.equal(res.status, 200, res.text);
    const escaped = /data-testid="generated-sql"[^>]*><code>([\s\S]*?)<\/code>/.exec(res.text)?.[1] ?? '';
    const sql = escaped
      .replaceAll('&#34;', '"')
      .replaceAll('&lt;', '<')
      .replaceAll('&gt;', '>')
      .replaceAll('&#39;', "'");
    assert.match(sql, /join [`"]reg_households[`"]/i);
    assert.match(sql, /[`"]reg_people[`"]\.[`"]marital_status[`"] = (\?|\$1)/);
    assert.doesNotMatch(sql, /'W'/, 'values are bound, not spliced');
  });

  it('runs a page with its count and audits whose data was shown', async () => {
    await admin.get('/queries/builder');
    const res = await admin.post('/queries/builder', widowsForm('run'));
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /data-testid="result-count">[^<]*<strong>2<\/strong>/);
    assert.match(res.text, /فاطمة علي حسن/);
    assert.match(res.text, /سارة يوسف خليل/);
    const subjects = await hub.ctx
      .knex('hub_audit_subjects as s')
      .join('hub_audit as a', 'a.id', 's.audit_id')
      .where({ 'a.actor': 'naf.builder', 'a.action': 'query.run' })
      .pluck<string[]>('s.national_id');
    assert.deepEqual(subjects.sort(), [PERSON.fatima, PERSON.sara].sort());
  });

  it('refuses an ungranted column posted by hand, naming it, and saves nothing', async () => {
    await admin.get('/queries/builder');
    const res = await admin.post(
      '/queries/builder',
      widowsForm('save', { name: 'sneaky', columns: ['reg_people.national_id', 'reg_people.gender'] }),
    );
    assert.equal(res.status, 403);
    assert.match(res.text, /reg_people\.gender/);
    assert.equal((await hub.ctx.knex('hub_queries').where({ name: 'sneaky' })).length, 0);
  });

  it('saves the query as an endpoint and lists it with its URL, parameters and a curl example', async () => {
    await admin.get('/queries/builder');
    const res = await admin.post(
      '/queries/builder',
      widowsForm('save', { name: 'naf-widows', description: 'Widows born before a date' }),
    );
    assert.equal(res.location, '/queries?saved=naf-widows', res.text);
    const list = await admin.get('/queries');
    assert.match(list.text, /POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/queries\/naf-widows/);
    assert.match(list.text, /born_before<\/code> \(date, required\)/);
    assert.match(list.text, /curl -s -X POST/);
    assert.doesNotMatch(list.text, /data-testid="broken"/);

    const { token } = await hub.createCaller('NAF');
    const api = await hub.call('POST', '/api/v1/queries/naf-widows', {
      token,
      json: { params: { born_before: '1990-01-01' } },
    });
    assert.equal(api.status, 200, api.text);
    assert.equal((api.body as { rows: unknown[] }).rows.length, 2);

    await hub.revoke('NAF', 'reg_households');
    const broken = await admin.get('/queries');
    assert.match(broken.text, /data-testid="broken"[^>]*>[^<]*<code>reg_households<\/code>/);
    assert.match(broken.text, /naf-/, 'the last run is listed with its client');
  });

  it('answers 403 to a custodian opening the builder or posting to it', async () => {
    const custodian = await signIn(hub, await createPortalUser(hub, 'reg.keeper', 'REG', 'custodian'));
    assert.equal((await custodian.get('/queries/builder')).status, 403);
    assert.equal((await custodian.get('/queries')).status, 403);
    assert.equal(
      (await custodian.post('/queries/builder', widowsForm('save', { name: 'by-custodian' }))).status,
      403,
    );
    assert.equal((await hub.ctx.knex('hub_queries').where({ name: 'by-custodian' })).length, 0);
  });
});
