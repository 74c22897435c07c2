import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { badCheckDigitId, validId, writeDefinition } from '../../support/registry-fixture.ts';

/** A change feed, in cursor order: versions of the same plate, cancellations before and after them, a bad row. */
const FEED: Array<[string, string, number, number]> = [
  ['P-1', validId(601), 0, 1],
  ['P-2', validId(602), 0, 2],
  ['P-3', validId(603), 1, 3],
  ['P-4', validId(604), 1, 4],
  ['P-1', validId(605), 0, 5],
  ['P-2', validId(602), 1, 6],
  ['P-3', validId(603), 0, 7],
  ['P-5', badCheckDigitId(606), 0, 8],
];

describeEachDatabase('the first incremental run into an empty table', (db) => {
  let dir: string;
  let ctx: AppContext;
  let sourceFile: string;
  const connector = async () => (await readConnectorDefinitions(ctx.config.connectorsDir))[0]!;

  before(async () => {
    dir = await createTempDir('hub-first-inc-');
    sourceFile = path.join(dir, 'feed.sqlite');
    const source = new Database(sourceFile);
    source.exec('CREATE TABLE changes (PLATE TEXT, OWNER_NID TEXT, CANCELLED INTEGER, SEQ INTEGER)');
    const insert = source.prepare('INSERT INTO changes VALUES (?, ?, ?, ?)');
    for (const change of FEED) insert.run(...change);
    source.close();
    ctx = openTestContext(db.url(), dir);
    await writeDefinition(ctx.config.connectorsDir, 'veh-feed', {
      name: 'veh-feed',
      entity: 'VEH',
      target: { table: 'veh_feed', key: ['plate'] },
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: { filename: sourceFile },
        table: 'changes',
        cursor: 'SEQ',
        deleted_flag: { column: 'CANCELLED', value: 1 },
      },
      mode: 'incremental',
      columns: {
        national_id: { from: 'OWNER_NID', required: true },
        plate: { from: 'PLATE', required: true },
      },
      batch_size: 2,
    });
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the latest version of each record, applies cancellations in their place, and rejects the bad row', async () => {
    const summary = await runConnector(await connector(), ctx);
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.deepEqual([summary.read, summary.deleted, summary.rejected, summary.watermark_to], [8, 1, 1, '8']);
    assert.deepEqual(await ctx.knex('veh_feed').orderBy('plate').select('plate', 'national_id'), [
      { plate: 'P-1', national_id: validId(605) },
      { plate: 'P-3', national_id: validId(603) },
    ]);
    assert.deepEqual(
      await ctx
        .knex('hub_person_tables')
        .where({ table_name: 'veh_feed' })
        .orderBy('national_id')
        .pluck('national_id'),
      [validId(603), validId(605)],
    );
    const rejects = await ctx.knex('hub_rejects').where({ run_id: summary.run_id }).pluck('source_key');
    assert.deepEqual(rejects, ['P-5']);
    const table = await ctx
      .knex('hub_tables')
      .where({ name: 'veh_feed' })
      .first<{ row_count: number | string }>();
    assert.equal(Number(table.row_count), 2);
  });

  it('the next run applies only what changed since', async () => {
    const source = new Database(sourceFile);
    source.prepare('INSERT INTO changes VALUES (?, ?, ?, ?)').run('P-6', validId(607), 0, 9);
    source.close();
    const summary = await runConnector(await connector(), ctx);
    assert.deepEqual([summary.status, summary.read, summary.inserted], ['succeeded', 1, 1]);
    assert.deepEqual(await ctx.knex('veh_feed').orderBy('plate').pluck('plate'), ['P-1', 'P-3', 'P-6']);
  });
});
