import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { createTempDir, describeEachDatabase, testDatabases } from '../support/databases.ts';
import { writeDefinition } from '../support/registry-fixture.ts';
import { runHubCli } from '../support/run-hub-cli.ts';

interface TableJson {
  table: string;
  entity: string;
  label: { en: string; ar: string };
  columns: Array<{ name: string; type: string; label: { en: string; ar: string } }>;
}

describeEachDatabase('hub tables (command line)', (db) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const hub = (...args: string[]) => runHubCli([...args, '--db', db.url()], env);

  before(async () => {
    dir = await createTempDir('hub-tables-cli-');
    env = { HUB_DATA_DIR: dir };
    const connectors = path.join(dir, 'connectors');
    await writeDefinition(connectors, 'ssc-insured', {
      name: 'ssc-insured',
      entity: 'SSC',
      entity_label: { en: 'Social security', ar: 'الضمان الاجتماعي' },
      source: { kind: 'csv', path: 'insured.csv' },
      target: { table: 'ssc_insured', label: { en: 'Insured persons', ar: 'المؤمن عليهم' } },
      columns: {
        national_id: { required: true, label: { en: 'National ID', ar: 'الرقم الوطني' } },
        employer_name: { label: { en: 'Employer', ar: 'صاحب العمل' } },
        monthly_salary: { type: 'number', label: { en: 'Monthly salary', ar: 'الراتب الشهري' } },
      },
    });
    await writeDefinition(connectors, 'naf-households', {
      name: 'naf-households',
      entity: 'NAF',
      source: { kind: 'csv', path: 'households.csv' },
      target: { table: 'naf_households', label: { en: 'Aid households', ar: 'الأسر المنتفعة' } },
      columns: {
        national_id: { required: true, label: { en: 'Member', ar: 'الفرد' } },
        poverty_score: { type: 'number', label: { en: 'Poverty score', ar: 'مؤشر الفقر' } },
      },
    });
    const migrated = await hub('migrate');
    assert.equal(migrated.code, 0, migrated.stderr);
    const granted = await hub(
      'grant',
      'NAF',
      'ssc_insured',
      'national_id',
      'monthly_salary',
      '--purpose',
      'means test',
      '--legal-basis',
      'National Aid Fund Law, art. 4',
    );
    assert.equal(granted.code, 0, granted.stderr);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists every table of the catalog with its owner and labels, and each column with type and labels', async () => {
    const result = await hub('tables');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const lines = result.stdout.trimEnd().split('\n');
    const words = lines.map((l) => l.trim().split(/\s{2,}/));
    assert.deepEqual(words, [
      ['naf_households (NAF) — Aid households — الأسر المنتفعة'],
      ['column', 'type', 'English', 'Arabic'],
      ['national_id', 'string', 'Member', 'الفرد'],
      ['poverty_score', 'number', 'Poverty score', 'مؤشر الفقر'],
      [''],
      ['ssc_insured (SSC) — Insured persons — المؤمن عليهم'],
      ['column', 'type', 'English', 'Arabic'],
      ['national_id', 'string', 'National ID', 'الرقم الوطني'],
      ['employer_name', 'string', 'Employer', 'صاحب العمل'],
      ['monthly_salary', 'number', 'Monthly salary', 'الراتب الشهري'],
    ]);
    // Columns line up, so the list reads as a table on a terminal.
    const block = lines.slice(6, 10);
    assert.equal(
      new Set(block.map((l) => l.indexOf(l.trim().split(/\s{2,}/)[1]!))).size,
      1,
      block.join('\n'),
    );
  });

  it('--json prints the same catalog as JSON', async () => {
    const result = await hub('tables', '--json');
    assert.equal(result.code, 0, result.stderr);
    const tables = JSON.parse(result.stdout) as TableJson[];
    assert.deepEqual(
      tables.map((t) => [
        t.table,
        t.entity,
        t.label.ar,
        t.columns.map((c) => `${c.name}:${c.type}:${c.label.en}`),
      ]),
      [
        [
          'naf_households',
          'NAF',
          'الأسر المنتفعة',
          ['national_id:string:Member', 'poverty_score:number:Poverty score'],
        ],
        [
          'ssc_insured',
          'SSC',
          'المؤمن عليهم',
          [
            'national_id:string:National ID',
            'employer_name:string:Employer',
            'monthly_salary:number:Monthly salary',
          ],
        ],
      ],
    );
  });

  it('--entity lists only what that entity may read now: its own tables and its granted columns', async () => {
    const naf = await hub('tables', '--entity', 'naf', '--json');
    assert.equal(naf.code, 0, naf.stderr);
    assert.deepEqual(
      (JSON.parse(naf.stdout) as TableJson[]).map((t) => [t.table, t.columns.map((c) => c.name)]),
      [
        ['naf_households', ['national_id', 'poverty_score']],
        ['ssc_insured', ['national_id', 'monthly_salary']],
      ],
    );
    const revoked = await hub('revoke', 'NAF', 'ssc_insured');
    assert.equal(revoked.code, 0, revoked.stderr);
    const after = await hub('tables', '--entity', 'NAF');
    assert.equal(after.code, 0, after.stderr);
    assert.doesNotMatch(after.stdout, /ssc_insured|monthly_salary/);
    assert.match(after.stdout, /^naf_households \(NAF\)/);
  });

  it('an unknown entity or a missing option value is a clear error with a non-zero exit', async () => {
    const unknown = await hub('tables', '--entity', 'NOPE');
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stdout, '');
    assert.match(unknown.stderr, /^hub: unknown entity "NOPE"/);
    const usage = await runHubCli(['tables', '--db', db.url(), '--entity'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--entity/);
  });

  it('a warehouse that was never migrated gets one hub: line instead of a catalog', async () => {
    const database = testDatabases.find((d) => d.name === db.name)!;
    const url = await database.createUrl();
    try {
      const result = await runHubCli(['tables', '--db', url], env);
      assert.equal(result.code, 1);
      assert.equal(result.stderr, 'hub: this warehouse has no catalog yet: run hub migrate\n');
    } finally {
      await database.dropUrl(url);
    }
  });
});
