import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { PROGRESS_WRITE_INTERVAL_MS, recordProgressOnRun } from '../../../connectors/run-progress.ts';
import type { LoadPhase, LoadStats } from '../../../warehouse/load/load-types.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { waitFor } from '../../support/wait-for.ts';

const stats = (read: number): LoadStats => ({
  read,
  inserted: read - 1,
  updated: 0,
  deleted: 0,
  rejected: 1,
});

interface RunRecord {
  status: string;
  phase: string | null;
  rows_read: number;
  rows_inserted: number;
  rows_rejected: number;
}

describeEachDatabase("a run's progress written on its record while it runs", (db) => {
  let dir: string;
  let ctx: AppContext;
  let runId: number;
  let clock: number;
  let updates: number;
  const countUpdates = (query: { sql: string }) => {
    if (/^update .hub_connector_runs./i.test(query.sql)) updates += 1;
  };

  before(async () => {
    dir = await createTempDir('hub-run-progress-');
    ctx = openTestContext(db.url(), dir);
    await migrateWarehouse(ctx.knex);
    ctx.knex.on('query', countUpdates);
  });

  after(async () => {
    ctx.knex.off('query', countUpdates);
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    const inserted: Array<{ id: number | string }> = await ctx.knex('hub_connector_runs').insert(
      {
        connector: 'veh-plates',
        mode: 'full',
        trigger: 'manual',
        status: 'running',
        phase: 'reading',
        started_at: '2026-12-06T08:00:00.000Z',
      },
      ['id'],
    );
    runId = Number(inserted[0]?.id);
    clock = 1_000_000;
    updates = 0;
  });

  const record = async () => {
    const row = await ctx
      .knex('hub_connector_runs')
      .where({ id: runId })
      .first<RunRecord>('status', 'phase', 'rows_read', 'rows_inserted', 'rows_rejected');
    return {
      ...row,
      rows_read: Number(row.rows_read),
      rows_inserted: Number(row.rows_inserted),
      rows_rejected: Number(row.rows_rejected),
    };
  };
  const recordShows = (read: number, phase: LoadPhase) =>
    waitFor(
      `the record shows ${read} read while ${phase}`,
      record,
      (r) => r.rows_read === read && r.phase === phase,
    );

  it('writes at once when the phase changes, at most once a second within a phase, and always the latest counts', async () => {
    const forwarded: Array<[number, LoadPhase]> = [];
    const onProgress = recordProgressOnRun(
      ctx.knex,
      runId,
      (s, phase) => forwarded.push([s.read, phase]),
      () => clock,
    );

    onProgress(stats(2), 'loading');
    await recordShows(2, 'loading');
    assert.deepEqual(await record(), {
      status: 'running',
      phase: 'loading',
      rows_read: 2,
      rows_inserted: 1,
      rows_rejected: 1,
    });

    // Within the second: kept, not written.
    clock += PROGRESS_WRITE_INTERVAL_MS / 2;
    onProgress(stats(4), 'loading');
    onProgress(stats(6), 'loading');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await record()).rows_read, 2);
    assert.equal(updates, 1);

    // A second after the last write: the latest counts.
    clock += PROGRESS_WRITE_INTERVAL_MS / 2;
    onProgress(stats(8), 'loading');
    await recordShows(8, 'loading');

    // A new phase is written at once, whatever the time.
    onProgress(stats(9), 'indexing');
    await recordShows(9, 'indexing');
    assert.equal(updates, 3);
    assert.deepEqual(forwarded, [
      [2, 'loading'],
      [4, 'loading'],
      [6, 'loading'],
      [8, 'loading'],
      [9, 'indexing'],
    ]);
  });

  it('never writes over a run that has ended: its summary stays the record', async () => {
    const onProgress = recordProgressOnRun(ctx.knex, runId, undefined, () => clock);
    await ctx
      .knex('hub_connector_runs')
      .where({ id: runId })
      .update({ status: 'succeeded', phase: null, rows_read: 5, rows_inserted: 4, rows_rejected: 1 });
    onProgress(stats(3), 'swapping');
    await waitFor(
      'the write was made',
      () => Promise.resolve(updates),
      (n) => n === 2,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await record(), {
      status: 'succeeded',
      phase: null,
      rows_read: 5,
      rows_inserted: 4,
      rows_rejected: 1,
    });
  });

  it('a write that fails neither throws into the load nor stops the progress it forwards', async () => {
    const broken = openTestContext(db.url(), dir);
    await closeContext(broken);
    const forwarded: number[] = [];
    const onProgress = recordProgressOnRun(
      broken.knex,
      runId,
      (s) => forwarded.push(s.read),
      () => clock,
    );
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      onProgress(stats(2), 'loading');
      onProgress(stats(3), 'indexing');
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(forwarded, [2, 3]);
    assert.deepEqual(unhandled, []);
    assert.equal((await record()).phase, 'reading');
  });
});
