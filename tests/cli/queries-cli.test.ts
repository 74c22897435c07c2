import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { validId, writeDefinition } from '../support/registry-fixture.ts';
import { runHubCli } from '../support/run-hub-cli.ts';

describeEachDatabase('hub queries explain (command line)', (db) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const hub = (...args: string[]) => runHubCli([...args, '--db', db.url()], env);

  before(async () => {
    dir = await createTempDir('hub-queries-cli-');
    env = { HUB_DATA_DIR: dir };
    const connectors = path.join(dir, 'connectors');
    await writeDefinition(connectors, 'ssc-insured', {
      name: 'ssc-insured',
      entity: 'SSC',
      source: { kind: 'csv', path: 'insured.csv' },
      target: { table: 'ssc_insured' },
      columns: {
        national_id: { required: true },
        employer_name: {},
        monthly_salary: { type: 'number' },
      },
      indexes: [['employer_name', 'monthly_salary']],
    });
    await writeFile(
      path.join(connectors, 'insured.csv'),
      [
        'national_id,employer_name,monthly_salary',
        ...Array.from({ length: 30 }, (_, i) => `${validId(i)},${['Acme', 'Globex'][i % 2]},${400 + i}`),
      ].join('\n'),
    );
    await writeFile(
      path.join(dir, 'query.json'),
      JSON.stringify({
        name: 'acme-salaries',
        entity: 'NAF',
        tables: ['ssc_insured'],
        columns: ['ssc_insured.national_id', 'ssc_insured.monthly_salary'],
        conditions: [
          { column: 'ssc_insured.employer_name', op: '=', value: 'Acme' },
          { column: 'ssc_insured.monthly_salary', op: '>=', param: 'from' },
        ],
        params: { from: { type: 'number', required: true } },
        order_by: [{ column: 'ssc_insured.monthly_salary', direction: 'desc' }],
      }),
    );
    for (const args of [
      ['migrate'],
      ['connectors', 'run', 'ssc-insured'],
      [
        'grant',
        'NAF',
        'ssc_insured',
        '--purpose',
        'means test',
        '--legal-basis',
        'National Aid Fund Law, art. 4',
      ],
      ['queries', 'save', path.join(dir, 'query.json')],
    ]) {
      const result = await hub(...args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    }
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("prints the compiled SQL, its bindings and the database's plan", async () => {
    const result = await hub('queries', 'explain', 'acme-salaries', '--param', 'from=410');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const [sql, bindings, ...plan] = result.stdout.trimEnd().split('\n');
    assert.match(sql!, /^select .* from .ssc_insured. where .* order by .* limit/);
    assert.equal(bindings, '-- bindings: ["Acme",410,101]');
    assert.ok(plan.length > 0);
    if (db.name === 'sqlite') {
      // EXPLAIN QUERY PLAN: the declared index serves the filter.
      assert.ok(
        plan.some((line) =>
          /^SEARCH ssc_insured USING INDEX dx_ssc_insured__employer_name__monthly_salary/.test(line),
        ),
        plan.join('\n'),
      );
    } else {
      // EXPLAIN: the plan tree, its first node the page's limit.
      assert.match(plan[0]!, /^Limit {2}\(cost=/);
      assert.ok(plan.some((line) => /ssc_insured/.test(line)));
    }
  });

  it('plans a required parameter that was not given with a placeholder, and says so', async () => {
    const result = await hub('queries', 'explain', 'acme-salaries');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^-- from: not given, planned with a placeholder value$/m);
    assert.match(result.stdout, /^-- bindings: \["Acme",0,101\]$/m);
  });

  it('an unknown query, a bad parameter or a malformed --param → one hub: line and a non-zero exit', async () => {
    const cases: Array<[string[], RegExp, number]> = [
      [['no-such-query'], /^hub: no saved query named "no-such-query"\n$/, 1],
      [['Bad Name!'], /^hub: no saved query named "Bad Name!"\n$/, 1],
      [['acme-salaries', '--param', 'from=lots'], /^hub: params\.from: must be a number/, 1],
      [['acme-salaries', '--param', 'to=5'], /^hub: params\.to: unknown parameter/, 1],
      [['acme-salaries', '--param', 'from'], /expected name=value/, 2],
    ];
    for (const [args, stderr, code] of cases) {
      const result = await hub('queries', 'explain', ...args);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, stderr);
      assert.equal(result.stdout, '');
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    }
  });
});
