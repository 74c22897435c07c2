import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { closeContext, type AppContext } from '../../server/context.ts';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { openTestContext } from '../support/hub-context.ts';
import { writeDefinition } from '../support/registry-fixture.ts';
import { runHubCli } from '../support/run-hub-cli.ts';
import { countAuditRows } from '../support/audit-rows.ts';

describeEachDatabase('hub grant, revoke and grants (command line)', (db) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let ctx: AppContext;
  const hub = (...args: string[]) => runHubCli([...args, '--db', db.url()], env);
  const TERMS = [
    '--purpose',
    'means test for cash assistance',
    '--legal-basis',
    'National Aid Fund Law, art. 4',
  ];
  const operator = `cli:${os.userInfo().username}`;
  const grantRows = () =>
    ctx
      .knex('hub_grants')
      .orderBy(['entity', 'table_name', 'column_name'])
      .select('entity', 'table_name', 'column_name');

  before(async () => {
    dir = await createTempDir('hub-grants-cli-');
    env = { HUB_DATA_DIR: dir };
    await writeDefinition(path.join(dir, 'connectors'), 'ssc-insured', {
      name: 'ssc-insured',
      entity: 'SSC',
      source: { kind: 'csv', path: 'insured.csv' },
      target: { table: 'ssc_insured' },
      columns: {
        national_id: { required: true },
        employer_name: {},
        monthly_salary: { type: 'number' },
        start_date: { type: 'date' },
      },
    });
    ctx = openTestContext(db.url(), dir);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('grant with columns gives those columns and says what the entity can now read', async function () {
    this.timeout(240_000); // each command is its own process, slow on a busy machine
    const result = await hub('grant', 'NAF', 'ssc_insured', 'monthly_salary', 'national_id', ...TERMS);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'granted: NAF can read ssc_insured (national_id, monthly_salary)\n');
    assert.deepEqual(await grantRows(), [
      { entity: 'NAF', table_name: 'ssc_insured', column_name: 'monthly_salary' },
      { entity: 'NAF', table_name: 'ssc_insured', column_name: 'national_id' },
    ]);
  });

  it('grant without columns gives the whole table', async function () {
    this.timeout(240_000); // each command is its own process, slow on a busy machine
    const result = await hub('grant', 'MOSD', 'ssc_insured', ...TERMS, '--expires', '2099-12-31');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'granted: MOSD can read ssc_insured (all columns)\n');
  });

  it('grants lists every grant with its purpose, legal basis, expiry, who granted it and when', async function () {
    this.timeout(240_000); // each command is its own process, slow on a busy machine
    const all = await hub('grants');
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trim().split('\n');
    assert.equal(lines[0], 'entity\ttable\tcolumn\tpurpose\tlegal_basis\texpires\tgranted_by\tgranted_at');
    const why = ['means test for cash assistance', 'National Aid Fund Law, art. 4'];
    assert.deepEqual(
      lines.slice(1).map((l) => l.split('\t').slice(0, 7)),
      [
        ['MOSD', 'ssc_insured', '(all columns)', ...why, '2100-01-01T00:00:00.000Z', operator],
        ['NAF', 'ssc_insured', 'monthly_salary', ...why, 'never', operator],
        ['NAF', 'ssc_insured', 'national_id', ...why, 'never', operator],
      ],
    );
    assert.ok(
      lines.slice(1).every((l) => /\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(l)),
      all.stdout,
    );
    const naf = await hub('grants', '--entity', 'NAF');
    assert.equal(naf.stdout.trim().split('\n').length, 3);
    assert.equal((await hub('grants', '--entity', 'NOBODY')).stdout, 'no grants\n');
  });

  it('revoke with columns takes them back; revoke without columns takes the table', async function () {
    this.timeout(240_000); // each command is its own process, slow on a busy machine
    const some = await hub('revoke', 'MOSD', 'ssc_insured', 'employer_name');
    assert.equal(some.code, 0, some.stderr);
    assert.equal(
      some.stdout,
      'revoked: MOSD can read ssc_insured (national_id, monthly_salary, start_date)\n',
    );
    const all = await hub('revoke', 'NAF', 'ssc_insured');
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, 'revoked: NAF can no longer read ssc_insured\n');
    assert.deepEqual(
      (await grantRows()).map((r: { entity: string; column_name: string }) => `${r.entity}.${r.column_name}`),
      ['MOSD.monthly_salary', 'MOSD.national_id', 'MOSD.start_date'],
    );
    const audit = await ctx
      .knex('hub_audit')
      .whereIn('action', ['grant', 'revoke'])
      .orderBy('id')
      .select('actor', 'entity', 'action', 'target');
    assert.deepEqual(audit, [
      { actor: operator, entity: 'NAF', action: 'grant', target: 'ssc_insured' },
      { actor: operator, entity: 'MOSD', action: 'grant', target: 'ssc_insured' },
      { actor: operator, entity: 'MOSD', action: 'revoke', target: 'ssc_insured' },
      { actor: operator, entity: 'NAF', action: 'revoke', target: 'ssc_insured' },
    ]);
  });

  it('exits 1 naming an unknown table or unknown columns, and changes nothing', async function () {
    this.timeout(240_000); // each command is its own process, slow on a busy machine
    const before = await grantRows();
    const table = await hub('grant', 'NAF', 'ssc_nothing', ...TERMS);
    assert.equal(table.code, 1);
    assert.equal(table.stderr, 'hub: unknown table "ssc_nothing"\n');
    const columns = await hub('grant', 'NAF', 'ssc_insured', 'salary', 'national_id', 'employer', ...TERMS);
    assert.equal(columns.code, 1);
    assert.equal(columns.stderr, 'hub: ssc_insured has no column "salary", "employer"\n');
    const entity = await hub('grant', 'naf', 'ssc_insured', ...TERMS);
    assert.equal(entity.code, 1);
    assert.match(entity.stderr, /^hub: entity code "naf" must match/);
    const expired = await hub('grant', 'NAF', 'ssc_insured', ...TERMS, '--expires', '2001-01-01');
    assert.equal(expired.code, 1);
    assert.equal(expired.stderr, 'hub: expires: 2001-01-01 has already passed\n');
    const notADate = await hub('grant', 'NAF', 'ssc_insured', ...TERMS, '--expires', 'soon');
    assert.equal(notADate.code, 1);
    assert.match(notADate.stderr, /^hub: expires: "soon" must be a date YYYY-MM-DD/);
    assert.deepEqual(await grantRows(), before);
  });

  it('revoke --dry-run names the saved queries and API clients the revoke would break, and changes nothing', async function () {
    this.timeout(240_000); // each command is its own process, slow on a busy machine
    const granted = await hub(
      'grant',
      'NAF',
      'ssc_insured',
      'national_id',
      'monthly_salary',
      'employer_name',
      ...TERMS,
    );
    assert.equal(granted.code, 0, granted.stderr);
    const saved = path.join(dir, 'salaries-by-employer.json');
    await writeFile(
      saved,
      JSON.stringify({
        name: 'salaries-by-employer',
        entity: 'NAF',
        tables: ['ssc_insured'],
        columns: ['ssc_insured.national_id', 'ssc_insured.monthly_salary'],
        order_by: [{ column: 'ssc_insured.employer_name' }],
      }),
    );
    const save = await hub('queries', 'save', saved);
    assert.equal(save.code, 0, save.stderr);
    const client = await hub('clients', 'create', 'NAF', '--name', 'NAF MIS');
    const { client_id } = JSON.parse(client.stdout) as { client_id: string };
    const before = await grantRows();
    const auditBefore = await countAuditRows(ctx.knex);

    const preview = await hub('revoke', 'NAF', 'ssc_insured', 'employer_name', '--dry-run');
    assert.equal(preview.code, 0, preview.stderr);
    assert.equal(
      preview.stdout,
      [
        'dry run, nothing changed: after this revoke NAF could read ssc_insured (national_id, monthly_salary)',
        'saved queries that would break:',
        '  salaries-by-employer\tssc_insured.employer_name',
        'API clients affected:',
        `  ${client_id}\tNAF MIS`,
        '',
      ].join('\n'),
    );
    assert.deepEqual(await grantRows(), before);
    assert.equal(await countAuditRows(ctx.knex), auditBefore);

    const unknown = await hub('revoke', 'NAF', 'ssc_nothing', '--dry-run');
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, 'hub: unknown table "ssc_nothing"\n');
  });

  it('exits 2 when arguments are missing, or a grant does not say why', async function () {
    this.timeout(240_000); // each command is its own process, slow on a busy machine
    const before = await grantRows();
    assert.equal((await hub('grant', 'NAF')).code, 2);
    const noPurpose = await hub('grant', 'NAF', 'ssc_insured', '--legal-basis', 'a law');
    assert.equal(noPurpose.code, 2);
    assert.equal(noPurpose.stderr, 'hub: --purpose is required: say why NAF reads ssc_insured\n');
    const noBasis = await hub('grant', 'NAF', 'ssc_insured', '--purpose', 'a reason');
    assert.equal(noBasis.code, 2);
    assert.match(noBasis.stderr, /^hub: --legal-basis is required/);
    assert.equal((await hub('revoke')).code, 2);
    assert.equal((await hub('grants', '--entity')).code, 2);
    assert.deepEqual(await grantRows(), before);
  });
});
