import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector, type RunSummary } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { MAX_DELETIONS_INTO_EMPTY_TABLE } from '../../../warehouse/load/full-load.ts';
import { badCheckDigitId, validId, writeDefinition } from '../../support/registry-fixture.ts';

/** One change at the vehicle registry: plate, unit (a second key column), owner, cancelled, cursor. */
type Change = [string, number | string, string, number, number];

/**
 * A change feed, in cursor order, two changes per batch: versions of the same plate, a plate
 * whose versions end in a cancellation, one cancelled and then registered again, cancellations
 * of plates never sent, a bad row. Cancellations carry the unit as text, registrations as a
 * number: the registry's own columns are loosely typed.
 */
const FEED: Change[] = [
  ['P-1', 1, validId(601), 0, 1],
  ['P-2', 1, validId(602), 0, 2],
  ['P-3', '1', validId(603), 1, 3],
  ['P-4', '1', validId(604), 1, 4],
  ['P-1', 1, validId(605), 0, 5],
  ['P-2', 1, validId(602), 0, 6],
  ['P-3', 1, validId(603), 0, 7],
  ['P-5', 1, badCheckDigitId(606), 0, 8],
  ['P-7', 1, validId(607), 0, 9],
  ['P-2', '1', validId(602), 1, 10],
  ['P-8', 1, validId(608), 0, 11],
  ['P-7', 1, validId(609), 0, 12],
  ['P-7', '1', validId(609), 1, 13],
  ['P-8', '1', validId(608), 1, 14],
  ['P-8', 1, validId(610), 0, 15],
  ['P-9', 1, validId(611), 0, 16],
];

/** A longer feed over few records (changes land in the same batch and in different ones), generated from a fixed seed. */
function generateFeed(length: number, seed: number): Change[] {
  let state = seed;
  // mulberry32: small, and every bit of its output is usable.
  const next = (n: number) => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  return Array.from({ length }, (_, i): Change => {
    const plate = `G-${next(5)}`;
    const unit = next(2) + 1;
    const cancelled = next(5) === 0 ? 1 : 0;
    const owner = next(20) === 0 ? badCheckDigitId(650) : validId(650 + next(6));
    return [plate, cancelled === 1 ? String(unit) : unit, owner, cancelled, i + 1];
  });
}

describeEachDatabase('the first incremental run into an empty table', (db) => {
  let dir: string;
  let ctx: AppContext;
  let sourceFile: string;

  const connector = async (name: string) =>
    (await readConnectorDefinitions(ctx.config.connectorsDir)).find((d) => d.name === name)!;
  const run = async (name: string) => runConnector(await connector(name), ctx);
  const appendChanges = (table: string, changes: Change[]) => {
    const source = new Database(sourceFile);
    source.exec(
      `CREATE TABLE IF NOT EXISTS ${table} (PLATE TEXT, UNIT, OWNER_NID TEXT, CANCELLED INTEGER, SEQ INTEGER)`,
    );
    const insert = source.prepare(`INSERT INTO ${table} VALUES (?, ?, ?, ?, ?)`);
    source.transaction(() => changes.forEach((change) => insert.run(...change)))();
    source.close();
  };
  /** A connector reading the changes of `sourceTable` since its watermark into `table`. */
  const defineFeed = (name: string, table: string, sourceTable: string, batchSize = 2) =>
    writeDefinition(ctx.config.connectorsDir, name, {
      name,
      entity: 'VEH',
      target: { table, key: ['plate', 'unit'] },
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: { filename: sourceFile },
        table: sourceTable,
        cursor: 'SEQ',
        deleted_flag: { column: 'CANCELLED', value: 1 },
      },
      mode: 'incremental',
      columns: {
        national_id: { from: 'OWNER_NID', required: true },
        plate: { from: 'PLATE', required: true },
        unit: { from: 'UNIT', type: 'integer', required: true },
      },
      batch_size: batchSize,
    });
  const tableRows = (table: string) =>
    ctx
      .knex(table)
      .orderBy(['plate', 'unit'])
      .select<Array<{ plate: string; unit: number | string; national_id: string }>>(
        'plate',
        'unit',
        'national_id',
      );
  const members = (table: string) =>
    ctx.knex('hub_person_tables').where({ table_name: table }).orderBy('national_id').pluck('national_id');
  const watermarkOf = async (name: string) =>
    (await ctx.knex('hub_connectors').where({ name }).first<{ watermark: string | null }>()).watermark;
  /** What FEED leaves: the last version of P-1, P-3 and P-8 registered again, P-9. */
  const endOfFeed = () => {
    const unit = db.name === 'postgres' ? '1' : 1; // pg hands bigint columns back as text
    return [
      { plate: 'P-1', unit, national_id: validId(605) },
      { plate: 'P-3', unit, national_id: validId(603) },
      { plate: 'P-8', unit, national_id: validId(610) },
      { plate: 'P-9', unit, national_id: validId(611) },
    ];
  };
  /**
   * FEED run into an empty table: P-2 and P-7 deleted, each present before its cancellation; P-3
   * and P-8 registered again after theirs; P-4 never sent; P-5 a reject.
   */
  const assertWholeFeedApplied = async (summary: RunSummary, table: string) => {
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.deepEqual(
      [summary.read, summary.inserted, summary.deleted, summary.rejected, summary.watermark_to],
      [16, 4, 2, 1, '16'],
    );
    assert.deepEqual(await tableRows(table), endOfFeed());
  };
  const rowCountOf = async (table: string) =>
    Number(
      (await ctx.knex('hub_tables').where({ name: table }).first<{ row_count: number | string }>()).row_count,
    );

  before(async () => {
    dir = await createTempDir('hub-first-inc-');
    sourceFile = path.join(dir, 'feed.sqlite');
    ctx = openTestContext(db.url(), dir);
    appendChanges('changes', FEED);
    await defineFeed('veh-feed', 'veh_feed', 'changes');
    await defineFeed('veh-refused', 'veh_refused', 'refused_changes');
    await defineFeed('veh-generated', 'veh_generated', 'generated_changes');
    await defineFeed('veh-applied', 'veh_applied', 'applied_changes');
    appendChanges('refused_changes', FEED);
    appendChanges('generated_changes', []);
    appendChanges('applied_changes', []);
    await defineFeed('veh-many', 'veh_many', 'many_changes', 2000);
    appendChanges('many_changes', manyDeletionsFeed());
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the last version of each record, removes what a later cancellation removes, and keeps the bad row as a reject', async () => {
    const summary = await run('veh-feed');
    await assertWholeFeedApplied(summary, 'veh_feed');
    assert.deepEqual(await members('veh_feed'), [validId(603), validId(605), validId(610), validId(611)]);
    const rejects = await ctx.knex('hub_rejects').where({ run_id: summary.run_id }).pluck('source_key');
    assert.deepEqual(rejects, ['P-5|1']);
    assert.equal(await rowCountOf('veh_feed'), 4);
  });

  it('the next run applies only what changed since', async () => {
    appendChanges('changes', [
      ['P-6', 1, validId(612), 0, 17],
      ['P-1', '1', validId(605), 1, 18],
    ]);
    const summary = await run('veh-feed');
    assert.deepEqual(
      [summary.status, summary.read, summary.inserted, summary.deleted],
      ['succeeded', 2, 1, 1],
    );
    assert.deepEqual(
      (await tableRows('veh_feed')).map((r) => r.plate),
      ['P-3', 'P-6', 'P-8', 'P-9'],
    );
    assert.equal(await rowCountOf('veh_feed'), 4);
  });

  it('a run that fails at its commit leaves the table empty, the watermark where it was and no rejects', async () => {
    await refuseWatermark(ctx, db.name, 'veh-refused');
    const failed = await run('veh-refused');
    assert.equal(failed.status, 'failed');
    assert.match(failed.error ?? '', /watermark refused/);
    assert.deepEqual(await tableRows('veh_refused'), []);
    assert.deepEqual(await members('veh_refused'), []);
    assert.equal(await watermarkOf('veh-refused'), null);
    assert.equal(await rowCountOf('veh_refused'), 0);
    assert.deepEqual(await ctx.knex('hub_rejects').where({ run_id: failed.run_id }).pluck('source_key'), []);
    assert.equal(await ctx.knex.schema.hasTable('veh_refused__next'), false);

    await allowWatermark(ctx, db.name);
    await assertWholeFeedApplied(await run('veh-refused'), 'veh_refused');
    assert.equal(await watermarkOf('veh-refused'), '16');
  });

  it('a feed deleting more records than it can follow in one stream is read again and applied batch by batch, counted once', async () => {
    const feedLength = manyDeletionsFeed().length;
    const summary = await run('veh-many');
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    // Batch by batch, K-1 counts as inserted and then deleted.
    assert.deepEqual(
      [summary.read, summary.inserted, summary.deleted, summary.rejected, summary.watermark_to],
      [feedLength, 3, 1, 1, String(feedLength)],
    );
    assert.deepEqual(
      (await tableRows('veh_many')).map((r) => r.plate),
      ['K-2', 'K-3'],
    );
    assert.deepEqual(await members('veh_many'), [validId(621), validId(623)]);
    assert.deepEqual(await ctx.knex('hub_rejects').where({ run_id: summary.run_id }).pluck('source_key'), [
      'B-1|1',
    ]);
    assert.equal(await rowCountOf('veh_many'), 2);
    assert.equal(await ctx.knex.schema.hasTable('veh_many__next'), false);
  });

  it('ends in the state the same feed reaches when applied batch by batch to a table already holding records', async () => {
    // Ends with a record registered and cancelled within one batch, its owner in no other record.
    const feed: Change[] = [
      ...generateFeed(120, 7),
      ['H-1', 1, validId(690), 0, 121],
      ['H-1', '1', validId(690), 1, 122],
    ];
    // The applied side holds one unrelated record first, so its run goes batch by batch.
    const seed: Change = ['SEED', 1, validId(699), 0, 0];
    appendChanges('applied_changes', [seed]);
    const seeded = await run('veh-applied');
    assert.equal(seeded.status, 'succeeded', seeded.error ?? '');
    appendChanges('generated_changes', feed);
    appendChanges('applied_changes', feed);

    const generated = await run('veh-generated');
    const applied = await run('veh-applied');
    assert.equal(generated.status, 'succeeded', generated.error ?? '');
    assert.equal(applied.status, 'succeeded', applied.error ?? '');
    assert.deepEqual([generated.read, generated.rejected], [applied.read, applied.rejected]);
    assert.equal(generated.watermark_to, applied.watermark_to);

    const appliedRows = (await tableRows('veh_applied')).filter((r) => r.plate !== 'SEED');
    assert.ok(appliedRows.length > 0, 'the generated feed leaves some records');
    assert.deepEqual(await tableRows('veh_generated'), appliedRows);
    assert.deepEqual(
      await members('veh_generated'),
      (await members('veh_applied')).filter((id) => id !== validId(699)),
    );
    assert.equal(await rowCountOf('veh_generated'), appliedRows.length);
    assert.equal(await rowCountOf('veh_applied'), appliedRows.length + 1);
  });
});

/**
 * Two plates, a bad row, then cancellations of more distinct plates than a streamed run keeps
 * track of (none of them ever sent), the cancellation of the first plate and a third plate.
 */
function manyDeletionsFeed(): Change[] {
  const cancellations = Array.from({ length: MAX_DELETIONS_INTO_EMPTY_TABLE + 1 }, (_, i): Change => [
    `X-${i}`,
    '1',
    validId(622),
    1,
    4 + i,
  ]);
  const seq = 4 + cancellations.length;
  return [
    ['K-1', 1, validId(620), 0, 1],
    ['K-2', 1, validId(621), 0, 2],
    ['B-1', 1, badCheckDigitId(624), 0, 3],
    ...cancellations,
    ['K-1', '1', validId(620), 1, seq],
    ['K-3', 1, validId(623), 0, seq + 1],
  ];
}

/** The database itself refuses to move one connector's watermark, as a failing disk or a lost connection would fail the commit. */
async function refuseWatermark(ctx: AppContext, database: string, connector: string): Promise<void> {
  if (database === 'sqlite') {
    await ctx.knex.raw(
      `CREATE TRIGGER refuse_watermark BEFORE UPDATE OF watermark ON hub_connectors WHEN NEW.name = '${connector}' ` +
        `BEGIN SELECT RAISE(ABORT, 'watermark refused'); END`,
    );
    return;
  }
  await ctx.knex.raw(
    `CREATE FUNCTION refuse_watermark() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'watermark refused'; END $$`,
  );
  await ctx.knex.raw(
    `CREATE TRIGGER refuse_watermark BEFORE UPDATE OF watermark ON hub_connectors FOR EACH ROW ` +
      `WHEN (NEW.name = '${connector}') EXECUTE FUNCTION refuse_watermark()`,
  );
}

async function allowWatermark(ctx: AppContext, database: string): Promise<void> {
  if (database === 'sqlite') {
    await ctx.knex.raw('DROP TRIGGER refuse_watermark');
    return;
  }
  await ctx.knex.raw('DROP TRIGGER refuse_watermark ON hub_connectors');
  await ctx.knex.raw('DROP FUNCTION refuse_watermark()');
}
