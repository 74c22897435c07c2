import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';

describeEachDatabase('record keys that repeat within one full load', (db) => {
  let dir: string;
  let ctx: AppContext;

  before(async () => {
    dir = await createTempDir('hub-dupes-');
    ctx = openTestContext(db.url(), dir);
    const csv = path.join(dir, 'jobs.csv');
    await writeFile(
      csv,
      [
        'nid,employer,start',
        `${validId(1)},شركة الأمل,2020-01-01`,
        `${validId(1)},شركة النور,2021-06-01`,
        `${validId(1)},شركة الأمل,2020-01-01`,
        `${validId(2)},شركة الأمل,2019-03-15`,
      ].join('\n'),
    );
    await writeDefinition(ctx.config.connectorsDir, 'job-history', {
      name: 'job-history',
      entity: 'JOB',
      target: { table: 'job_history', key: ['national_id', 'employer_name', 'start_date'] },
      source: { kind: 'csv', path: csv },
      columns: {
        national_id: { from: 'nid', required: true },
        employer_name: { from: 'employer', required: true },
        start_date: { from: 'start', type: 'date', required: true },
      },
    });
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the first row of a composite key, rejects the repeat, and indexes the key uniquely', async () => {
    const [def] = await readConnectorDefinitions(ctx.config.connectorsDir);
    const summary = await runConnector(def!, ctx);
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.deepEqual([summary.read, summary.inserted, summary.rejected], [4, 3, 1]);
    const reject = await ctx
      .knex('hub_rejects')
      .where({ connector: 'job-history' })
      .first<{ reason: string; source_key: string }>();
    assert.match(reject.reason, /duplicate record key \(national_id, employer_name, start_date\)/);
    assert.equal(reject.source_key, `${validId(1)}|شركة الأمل|2020-01-01`);
    await assert.rejects(
      ctx
        .knex('job_history')
        .insert({ national_id: validId(1), employer_name: 'شركة الأمل', start_date: '2020-01-01' }),
    );
    const people = await ctx
      .knex('hub_person_tables')
      .where({ table_name: 'job_history' })
      .orderBy('national_id')
      .pluck('national_id');
    assert.deepEqual(people, [validId(1), validId(2)]);
  });
});
