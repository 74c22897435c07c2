import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunOptions, RunSummary } from '../../../connectors/run-connector.ts';
import { readConfig } from '../../../server/config.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { startHub } from '../../../server/main.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { HubError } from '../../../warehouse/core/errors.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { holdLockInAnotherProcess } from '../../support/lock-holder-process.ts';
import { platesDefinition, startGatedRegistry, type GatedRegistry } from '../../support/gated-registry.ts';
import { waitFor } from '../../support/wait-for.ts';
import { findRunProcesses, isRunning, readCommandLine, waitUntilEnded } from '../../support/process-tree.ts';
import { writeDefinition } from '../../support/registry-fixture.ts';

const YOUNG = '--max-semi-space-size=4';

interface StartedRun {
  done: Promise<RunSummary>;
  runId: number;
  /** The process the run is carried out in. */
  pid: number;
  progress: Array<{ read: number; phase: string }>;
}

/** Starts a run and waits until it holds its lock, with its process found among this one's children. */
async function startRun(ctx: AppContext, options: RunOptions = {}): Promise<StartedRun> {
  const before = new Set(await findRunProcesses());
  const progress: StartedRun['progress'] = [];
  let runId: number | null = null;
  const done = ctx.connectorRuns.run('veh-plates', {
    full: true,
    ...options,
    onStart: (run) => (runId = run.run_id),
    onProgress: (stats, phase) => progress.push({ read: stats.read, phase }),
  });
  done.catch(() => undefined);
  for (let i = 0; i < 400 && runId === null; i++) await sleep(25);
  assert.ok(runId !== null, 'the run started');
  const news = (await findRunProcesses()).filter((pid) => !before.has(pid));
  assert.equal(news.length, 1, 'one process of its own carries the run out');
  return { done, runId, pid: news[0]!, progress };
}

describeEachDatabase('connector runs the hub starts, each in a process of its own', (db) => {
  let dir: string;
  let ctx: AppContext;
  let registry: GatedRegistry;

  const countPlates = async () => Number((await ctx.knex('veh_plates').count({ n: '*' }))[0]!.n);
  const runRow = (id: number) =>
    ctx.knex('hub_connector_runs').where({ id }).first<{
      status: string;
      error: string | null;
      trigger: string;
      phase: string | null;
      rows_read: number | string;
    }>();

  before(async () => {
    dir = await createTempDir('hub-load-process-');
    ctx = openTestContext(db.url(), dir, { loadProcesses: true });
    registry = await startGatedRegistry();
    await writeDefinition(ctx.config.connectorsDir, 'veh-plates', platesDefinition(registry.url));
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await registry.close();
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('carries the run out in a node process with the bulk flags, which reports its start, progress and summary and then ends', async function () {
    this.timeout(60_000);
    registry.hold('2');
    const run = await startRun(ctx, { trigger: 'schedule', actor: 'schedule' });
    const argv = await readCommandLine(run.pid);
    assert.ok(argv.includes(YOUNG), argv.join(' '));
    // The first page's batch is loaded and reported while the run waits for the second page.
    for (let i = 0; i < 400 && run.progress.length === 0; i++) await sleep(25);
    assert.deepEqual(run.progress[0], { read: 2, phase: 'loading' });
    registry.release('2');
    const summary = await run.done;
    assert.equal(summary.run_id, run.runId);
    assert.deepEqual(
      [summary.status, summary.mode, summary.read, summary.inserted, summary.rejected],
      ['succeeded', 'full', 5, 4, 1],
    );
    assert.deepEqual(run.progress.at(-1), { read: 5, phase: 'swapping' });
    assert.equal(await countPlates(), 4);
    assert.equal((await runRow(run.runId))?.trigger, 'schedule');
    await waitUntilEnded(run.pid);
  });

  it("answers a run that cannot start with the hub's own error: an unknown connector, a connector another process runs", async function () {
    this.timeout(60_000);
    await assert.rejects(
      ctx.connectorRuns.run('no-such-connector', {}),
      (err: unknown) =>
        err instanceof HubError && err.status === 404 && /no connector named/.test(err.message),
    );
    const holder = await holdLockInAnotherProcess(db.url(), 'connector:veh-plates');
    try {
      await assert.rejects(
        ctx.connectorRuns.run('veh-plates', {}),
        (err: unknown) => err instanceof HubError && err.code === 'connector_busy' && err.status === 409,
      );
    } finally {
      await holder.kill('SIGKILL');
    }
  });

  it('marks a run whose process was killed failed at once; the load replaced nothing and the connector runs again at once', async function () {
    this.timeout(60_000);
    registry.hold('2');
    const run = await startRun(ctx);
    // The run's process writes how far it got on the run's record.
    await waitFor(
      'the record shows the first page loaded',
      () => runRow(run.runId),
      (r) => Number(r?.rows_read) === 2 && r?.phase === 'loading',
    );
    process.kill(run.pid, 'SIGKILL');
    await assert.rejects(
      run.done,
      (err: unknown) =>
        err instanceof HubError && err.code === 'load_interrupted' && /SIGKILL/.test(err.message),
    );
    const row = await runRow(run.runId);
    assert.equal(row?.status, 'failed');
    assert.match(row?.error ?? '', /^interrupted: the run's process ended \(SIGKILL\)/);
    assert.deepEqual(
      { phase: row?.phase, read: Number(row?.rows_read) },
      { phase: null, read: 2 },
      'an interrupted run keeps the counts it reached, and is in no phase',
    );
    assert.equal(await countPlates(), 4, 'the cut-off full load replaced nothing');
    registry.release('2');
    const again = await ctx.connectorRuns.run('veh-plates', { full: true });
    assert.equal(again.status, 'succeeded', again.error ?? '');
  });

  it('stops the runs under way when the hub closes, marks them interrupted, and starts no new one', async function () {
    this.timeout(60_000);
    const closing = openTestContext(db.url(), dir, { loadProcesses: true });
    let closed = false;
    try {
      registry.hold('2');
      const run = await startRun(closing);
      await closeContext(closing);
      closed = true;
      assert.ok(!isRunning(run.pid), 'the run ended with the hub');
      await assert.rejects(
        run.done,
        (err: unknown) => err instanceof HubError && /SIGTERM/.test(err.message),
      );
      const row = await runRow(run.runId);
      assert.equal(row?.status, 'failed');
      assert.match(row?.error ?? '', /SIGTERM/);
      await assert.rejects(
        closing.connectorRuns.run('veh-plates', {}),
        (err: unknown) => err instanceof HubError && err.code === 'hub_stopping' && err.status === 503,
      );
      assert.equal(await countPlates(), 4);
    } finally {
      registry.release('2');
      if (!closed) await closeContext(closing);
    }
  });

  it("refreshes this process's catalog when the run's process has registered a changed definition", async function () {
    this.timeout(60_000);
    const columnsOf = async () =>
      (await ctx.catalog.fetch()).find((t) => t.name === 'veh_plates')?.columns.map((c) => c.name);
    assert.deepEqual(await columnsOf(), ['national_id', 'plate']);
    const definition = platesDefinition(registry.url);
    await writeDefinition(ctx.config.connectorsDir, 'veh-plates', {
      ...definition,
      columns: { ...definition.columns, plate_copy: { from: 'plate' } },
    });
    try {
      const summary = await ctx.connectorRuns.run('veh-plates', { full: true });
      assert.equal(summary.status, 'succeeded', summary.error ?? '');
      assert.deepEqual(await columnsOf(), ['national_id', 'plate', 'plate_copy']);
    } finally {
      await writeDefinition(ctx.config.connectorsDir, 'veh-plates', definition);
    }
  });
});

describe('hub start carries its scheduled runs out in processes of their own', () => {
  let dir: string;
  let registry: GatedRegistry;

  before(async () => {
    dir = await createTempDir('hub-load-process-start-');
    registry = await startGatedRegistry();
  });

  after(async () => {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a scheduled connector in a process of its own, which the hub stops with itself', async function () {
    this.timeout(60_000);
    const config = readConfig(
      { HUB_DATA_DIR: dir, HUB_DEMO: 'off', LOG_LEVEL: 'silent' },
      { databaseUrl: `sqlite:${path.join(dir, 'hub.sqlite')}`, port: 0 },
    );
    // node-cron takes a seconds field: the first tick comes within a second.
    await writeDefinition(config.connectorsDir, 'veh-plates', {
      ...platesDefinition(registry.url),
      schedule: '* * * * * *',
    });
    registry.hold('2');
    const hub = await startHub(config, () => undefined);
    let stopped = false;
    try {
      // The run holds its lock and waits on the registry's second page.
      const findRunning = () =>
        hub.ctx
          .knex('hub_connector_runs')
          .where({ connector: 'veh-plates', status: 'running' })
          .first<{ id: number; trigger: string } | undefined>();
      let running = await findRunning();
      for (let i = 0; i < 400 && running === undefined; i++) {
        await sleep(25);
        running = await findRunning();
      }
      assert.ok(running !== undefined, 'a scheduled run started');
      const [pid] = await findRunProcesses();
      assert.ok(pid !== undefined, 'the scheduled run has a process of its own');
      assert.equal(running?.trigger, 'schedule');
      await hub.stop();
      stopped = true;
      assert.ok(!isRunning(pid), 'the run ended with the hub');
      const check = openTestContext(config.databaseUrl, dir);
      try {
        const row = await check
          .knex('hub_connector_runs')
          .where({ id: running.id })
          .first<{ status: string; error: string }>();
        assert.equal(row?.status, 'failed');
        assert.match(row?.error ?? '', /SIGTERM/);
      } finally {
        await closeContext(check);
      }
    } finally {
      registry.release('2');
      if (!stopped) await hub.stop();
    }
  });
});
