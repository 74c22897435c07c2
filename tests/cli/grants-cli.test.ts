import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { closeContext, type AppContext } from '../../server/context.ts';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { openTestContext } from '../support/hub-context.ts';
import { writeDefinition } from '../support/registry-fixture.ts';
import { runHubCli } from '../support/run-hub-cli.ts';

describeEachDatabase('hub grant, revoke and grants (command line)', (db) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let ctx: AppContext;
  const hub = (...args: string[]) => runHubCli([...args, '--db', db.url()], env);
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

  it('grant with columns gives those columns and says what the entity can now read', async () => {
    const result = await hub('grant', 'NAF', 'ssc_insured', 'monthly_salary', 'national_id');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'granted: NAF can read ssc_insured (national_id, monthly_salary)\n');
    assert.deepEqual(await grantRows(), [
      { entity: 'NAF', table_name: 'ssc_insured', column_name: 'monthly_salary' },
      { entity: 'NAF', table_name: 'ssc_insured', column_name: 'national_id' },
    ]);
  });

  it('grant without columns gives the whole table', async () => {
    const result = await hub('grant', 'MOSD', 'ssc_insured');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'granted: MOSD can read ssc_insured (all columns)\n');
  });

  it('grants lists every grant with who granted it and when, or one entity with --entity', async () => {
    const all = await hub('grants');
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trim().split('\n');
    assert.equal(lines[0], 'entity\ttable\tcolumn\tgranted_by\tgranted_at');
    assert.deepEqual(
      lines.slice(1).map((l) => l.split('\t').slice(0, 4)),
      [
        ['MOSD', 'ssc_insured', '(all columns)', operator],
        ['NAF', 'ssc_insured', 'monthly_salary', operator],
        ['NAF', 'ssc_insured', 'national_id', operator],
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

  it('revoke with columns takes them back; revoke without columns takes the table', async () => {
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

  it('exits 1 naming an unknown table or unknown columns, and changes nothing', async () => {
    const before = await grantRows();
    const table = await hub('grant', 'NAF', 'ssc_nothing');
    assert.equal(table.code, 1);
    assert.equal(table.stderr, 'hub: unknown table "ssc_nothing"\n');
    const columns = await hub('grant', 'NAF', 'ssc_insured', 'salary', 'national_id', 'employer');
    assert.equal(columns.code, 1);
    assert.equal(columns.stderr, 'hub: ssc_insured has no column "salary", "employer"\n');
    const entity = await hub('grant', 'naf', 'ssc_insured');
    assert.equal(entity.code, 1);
    assert.match(entity.stderr, /^hub: entity code "naf" must match/);
    assert.deepEqual(await grantRows(), before);
  });

  it('exits 2 when arguments are missing', async () => {
    const before = await grantRows();
    assert.equal((await hub('grant', 'NAF')).code, 2);
    assert.equal((await hub('revoke')).code, 2);
    assert.equal((await hub('grants', '--entity')).code, 2);
    assert.deepEqual(await grantRows(), before);
  });
});
