import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import knexFactory from 'knex';
import { readConnectorDefinitions, type ConnectorDefinition } from '../../../connectors/definition.ts';
import {
  closeRangeReaders,
  openRangeReaders,
  readInTwoThreads,
} from '../../../connectors/parallel-read/read-in-two-threads.ts';
import {
  loadWithStageThread,
  type StageThreadOptions,
} from '../../../connectors/parallel-read/load-with-stage-thread.ts';
import { rangeCount } from '../../../connectors/parallel-read/rowid-ranges.ts';
import { sqliteDialect } from '../../../warehouse/dialects/sqlite.ts';
import { buildRejectRows, REJECT_COLUMNS } from '../../../warehouse/load/save-rejects.ts';
import { STAGE_TABLE } from '../../../warehouse/load/stage-file.ts';
import { runConnector, type RunSummary } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { DEFAULT_NATIONAL_ID_RULE } from '../../../warehouse/core/national-id.ts';
import type { LoadBatch } from '../../../warehouse/load/load-types.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import {
  badCheckDigitId,
  peopleDefinition,
  validId,
  writeDefinition,
} from '../../support/registry-fixture.ts';

const ROWS = 3000;
/** Ranges of 40 rowids: about 75 of them, enough for both threads to take many. */
const BATCH = 40;

/** Row n of the source: every kind of value a load meets, in a table with gaps in its rowids. */
function sourceRow(n: number) {
  const natno = n % 101 === 0 ? badCheckDigitId(n) : n % 151 === 0 ? validId(n - 1) : validId(n);
  const names = ['محمد أحمد', 'tab\there', 'line\nbreak', 'back\\slash', '😀 emoji'];
  return {
    NATNO: natno,
    NAME_AR: n % 173 === 0 ? null : `${names[n % 5]} ${n}`,
    SEX: n % 97 === 0 ? '9' : String(1 + (n % 2)),
    DOB: n % 89 === 0 ? '31/02/1990' : `${String(1 + (n % 28)).padStart(2, '0')}/0${1 + (n % 9)}/1980`,
    UPDATED_AT: `2026-01-01T00:${String(Math.floor(n / 60) % 60).padStart(2, '0')}:${String(n % 60).padStart(2, '0')}`,
    DELETED: n % 83 === 0 ? 1 : 0,
  };
}

const PEOPLE =
  'CREATE TABLE people (NATNO TEXT, NAME_AR TEXT, SEX TEXT, DOB TEXT, UPDATED_AT TEXT, DELETED INTEGER)';

function writeSource(file: string, create = PEOPLE, rows = ROWS): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(create);
  const insert = db.prepare(
    `INSERT INTO people (NATNO, NAME_AR, SEX, DOB, UPDATED_AT, DELETED) VALUES (@NATNO, @NAME_AR, @SEX, @DOB, @UPDATED_AT, @DELETED)`,
  );
  db.transaction(() => {
    for (let n = 1; n <= rows; n++) insert.run(sourceRow(n));
  })();
  // Gaps: whole ranges and single rows without a record.
  if (create === PEOPLE) db.exec('DELETE FROM people WHERE rowid % 7 = 0 OR rowid BETWEEN 1201 AND 1290');
  db.close();
}

/** Each batch's rows as their values' text: COPY lines split at tabs (escapes left as they are). */
const decodedRows = (batches: LoadBatch[]): string[][] =>
  batches.flatMap((b) =>
    b
      .copyText!.bytes.toString('utf8')
      .split('\n')
      .slice(0, -1)
      .map((line) => line.split('\t')),
  );

/** Another thread rewrites every name in the source, one transaction after another, until stopped. */
async function startRewriting(file: string): Promise<{ stop(): Promise<number> }> {
  const writer = new Worker(
    `const Database = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))});
     const { workerData, parentPort } = require('node:worker_threads');
     const db = new Database(workerData.file);
     db.pragma('busy_timeout = 5000');
     const rewrite = db.prepare("UPDATE people SET NAME_AR = 'version ' || ?");
     let version = 0, stop = false;
     parentPort.on('message', () => (stop = true));
     const step = () => {
       if (stop) { db.close(); parentPort.postMessage({ stopped: version }); return; }
       rewrite.run(++version);
       if (version === 1) parentPort.postMessage({ started: true });
       setImmediate(step);
     };
     step();`,
    { eval: true, workerData: { file } },
  );
  const nextMessage = () => new Promise<{ stopped?: number }>((resolve) => writer.once('message', resolve));
  await nextMessage();
  return {
    async stop() {
      const stopped = nextMessage();
      writer.postMessage('stop');
      const { stopped: versions } = await stopped;
      await writer.terminate();
      return versions ?? 0;
    },
  };
}

/** The number each source row's name ends with. */
const rowNumber = (name: string) => Number(name.split(' ').pop());

describe('Reading a SQLite source table on two threads', function () {
  this.timeout(120_000);
  let dir: string;
  let sourceFile: string;
  let def: ConnectorDefinition;

  const readDirectly = async (
    options: Parameters<typeof readInTwoThreads>[5],
    writeMs = 0,
    file = sourceFile,
    definition = def,
  ) => {
    const batches: LoadBatch[] = [];
    const cursors = { records: null as string | null };
    let oneThread = false;
    const readOnOneThread = (): AsyncIterable<LoadBatch> => {
      oneThread = true;
      return [] as unknown as AsyncIterable<LoadBatch>;
    };
    const location = { filename: file, table: 'people' };
    const rule = DEFAULT_NATIONAL_ID_RULE;
    for await (const batch of readInTwoThreads(
      definition,
      rule,
      location,
      cursors,
      readOnOneThread,
      options,
    )) {
      batches.push(batch);
      // A writer slower than the readers, as a database is: the worker's start is soon behind.
      if (writeMs > 0) await new Promise((resolve) => setTimeout(resolve, writeMs));
    }
    return { batches, cursor: cursors.records, oneThread };
  };

  before(async () => {
    dir = await createTempDir('hub-two-thread-read-');
    sourceFile = path.join(dir, 'people.sqlite');
    writeSource(sourceFile);
    await writeDefinition(dir, 'reg-people', peopleDefinition(sourceFile, { batch_size: 10, mode: 'full' }));
    def = (await readConnectorDefinitions(dir))[0]!;
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('both threads encode ranges, handed out in source order whichever thread did them', async () => {
    const threads: string[] = [];
    const { batches, cursor } = await readDirectly({ minRows: 0, onRange: (t) => threads.push(t) }, 5);
    assert.ok(threads.includes('worker') && threads.includes('main'), threads.join(' '));
    const source = new Database(sourceFile, { readonly: true });
    const records = source.prepare<[], number>('SELECT count(*) FROM people').pluck().get();
    const maxCursor = source.prepare<[], string>('SELECT max(UPDATED_AT) FROM people').pluck().get();
    source.close();
    const order = decodedRows(batches).map((row) => rowNumber(row[1]!));
    assert.ok(order.length > 2000, `${order.length} rows`);
    assert.ok(
      order.every((n, i) => i === 0 || n > order[i - 1]!),
      'rows out of source order',
    );
    assert.equal(
      batches.reduce((n, b) => n + b.read, 0),
      records,
    );
    assert.equal(
      batches.reduce((n, b) => n + b.copyText!.rows, 0),
      order.length,
    );
    assert.equal(cursor, maxCursor);
  });

  it('a second thread that fails to start, or fails on its first range, leaves every range to this thread', async () => {
    const alone = await readDirectly({
      minRows: 0,
      workerUrl: pathToFileURL(path.join(dir, 'missing.cjs')),
    });
    const failing = path.join(dir, 'failing-worker.cjs');
    await writeFile(
      failing,
      "require('node:worker_threads').parentPort.postMessage({ type: 'failed', message: 'no' });\n",
    );
    const threads: string[] = [];
    const failed = await readDirectly({
      minRows: 0,
      workerUrl: pathToFileURL(failing),
      onRange: (t) => threads.push(t),
    });
    const both = await readDirectly({ minRows: 0 }, 1);
    assert.deepEqual(new Set(threads), new Set(['main']));
    assert.deepEqual(decodedRows(alone.batches), decodedRows(both.batches));
    assert.deepEqual(decodedRows(failed.batches), decodedRows(both.batches));
    assert.equal(alone.cursor, both.cursor);
  });

  it('reads one state of a source that is being written, never a mix of two', async () => {
    const copy = path.join(dir, 'rewritten.sqlite');
    writeSource(copy);
    const rewriting = await startRewriting(copy);
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        // Read slowly enough for the worker to start while the file changes under both threads.
        const { batches } = await readDirectly({ minRows: 0 }, 2, copy);
        const versions = new Set(decodedRows(batches).map((row) => row[1]));
        assert.equal(versions.size, 1, `one read saw ${versions.size} versions of the names`);
      }
    } finally {
      assert.ok((await rewriting.stop()) > 1);
    }
  });

  it('a table without a usable rowid is left to the one-thread path', async () => {
    const tables = {
      'without rowid':
        'CREATE TABLE people (NATNO TEXT, NAME_AR TEXT, SEX TEXT, DOB TEXT, UPDATED_AT TEXT, DELETED INTEGER, PRIMARY KEY (NATNO, UPDATED_AT)) WITHOUT ROWID',
      'a column named rowid':
        'CREATE TABLE people (rowid TEXT, NATNO TEXT, NAME_AR TEXT, SEX TEXT, DOB TEXT, UPDATED_AT TEXT, DELETED INTEGER)',
      'a view': PEOPLE,
    };
    for (const [what, create] of Object.entries(tables)) {
      const file = path.join(dir, `${what.replace(/ /g, '-')}.sqlite`);
      writeSource(file, create);
      if (what === 'a view') {
        const source = new Database(file);
        source.exec('ALTER TABLE people RENAME TO base; CREATE VIEW people AS SELECT * FROM base');
        source.close();
      }
      const read = await readDirectly({ minRows: 0 }, 0, file);
      assert.deepEqual(
        { oneThread: read.oneThread, batches: read.batches.length },
        { oneThread: true, batches: 0 },
        what,
      );
    }
  });
});

const RUN = { id: 1, connector: 'reg-people' };

async function* toAsync<T>(items: T[]): AsyncIterable<T> {
  for (const item of items) yield await Promise.resolve(item);
}

describe('A full load into SQLite on two threads, the second writing a stage file', function () {
  this.timeout(120_000);
  let dir: string;
  let sourceFile: string;
  let def: ConnectorDefinition;

  const location = (file: string) => ({ filename: file, table: 'people' });
  const openPeople = (file: string) => () =>
    openRangeReaders(def, DEFAULT_NATIONAL_ID_RULE, location(file), 0);
  const readOnOneThread = (): AsyncIterable<LoadBatch> => {
    throw new Error('the table was read on one thread');
  };
  /** The load's batches, the stage thread writing `stageFile`. */
  const stagedBatches = (
    file: string,
    stageFile: string,
    cursors: { records: string | null },
    options: StageThreadOptions = {},
  ) =>
    loadWithStageThread(
      openPeople(file),
      readOnOneThread,
      def,
      DEFAULT_NATIONAL_ID_RULE,
      location(file),
      cursors,
      RUN,
      stageFile,
      options,
    );
  /** Waits (at most 20 s) until the stage thread has written a range into its stage file. */
  const untilStaged = async (stageFile: string) => {
    for (let i = 0; i < 800; i += 1) {
      try {
        const stage = new Database(stageFile, { readonly: true, fileMustExist: true });
        try {
          if (Number(stage.prepare(`SELECT count(*) FROM ${STAGE_TABLE}`).pluck().get()) > 0) return;
        } finally {
          stage.close();
        }
      } catch {
        // Not created yet, its table not yet made, or locked by the write under way.
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error('the stage thread wrote no range');
  };
  /** A SQLite file with a table for the load and hub_rejects, and the hub's bulk writer on this thread. */
  const openWarehouse = async (file: string) => {
    const warehouse = path.join(dir, `warehouse-${randomUUID()}.sqlite`);
    const knex = knexFactory({
      client: 'better-sqlite3',
      connection: { filename: warehouse },
      useNullAsDefault: true,
    });
    const readers = openPeople(file)()!;
    const columns = readers.reader.columns;
    closeRangeReaders(readers);
    await knex.raw(`CREATE TABLE loaded (${columns.map((c) => `"${c}" TEXT`).join(', ')})`);
    await knex.raw(`CREATE TABLE hub_rejects (${REJECT_COLUMNS.join(', ')})`);
    const target = { table: 'loaded', columns, key: ['national_id'] };
    const writer = await sqliteDialect.openBulkWriter(knex, target, 'auto', { inThisThread: true });
    return { knex, writer, stageFile: `${warehouse}.run-1.stage` };
  };

  /**
   * Loads the source through `loadWithStageThread` into a table of a SQLite file with the hub's
   * bulk writer, slowly enough (`writeMs` a batch) for the stage thread to take ranges; gives the
   * table's rows in rowid order, the batches' counts, rejects and cursor, which thread read each
   * range, and whether the stage file outlived the load.
   */
  const loadStaged = async (options: StageThreadOptions = {}, writeMs = 2, file = sourceFile) => {
    const { knex, writer, stageFile } = await openWarehouse(file);
    const cursors = { records: null as string | null };
    const threads: string[] = [];
    const totals = { read: 0, rows: 0, staged: 0, rejected: 0 };
    try {
      for await (const batch of stagedBatches(file, stageFile, cursors, {
        ...options,
        onRange: (thread) => threads.push(thread),
      })) {
        if (batch.staged !== undefined) await writer.appendStaged!(batch.staged.file, RUN);
        await writer.write(batch.rows, buildRejectRows(RUN, batch.rejects));
        totals.read += batch.read;
        totals.rows += batch.rows.length;
        totals.staged += batch.staged?.rows ?? 0;
        totals.rejected += batch.rejects.length + (batch.staged?.rejects ?? 0);
        if (writeMs > 0) await new Promise((resolve) => setTimeout(resolve, writeMs));
      }
      await writer.close();
      const rows = (await knex('loaded').orderByRaw('rowid').select()) as Array<Record<string, string>>;
      const rejects = await knex('hub_rejects')
        .orderByRaw('rowid')
        .select<Array<Record<string, unknown>>>(REJECT_COLUMNS);
      return {
        rows,
        totals,
        rejects: rejects.map((r) => REJECT_COLUMNS.map((c) => r[c])),
        cursor: cursors.records,
        threads,
        stageLeft: existsSync(stageFile),
      };
    } finally {
      await knex.destroy();
    }
  };

  /** The same source mapped range by range on one thread: what the load must write. */
  const mappedOnOneThread = () => {
    const readers = openPeople(sourceFile)()!;
    try {
      const ranges = Array.from({ length: rangeCount(readers.plan) }, (_, k) =>
        readers.reader.mapRange(readers.plan, k),
      );
      const columns = readers.reader.columns;
      return {
        rows: ranges.flatMap((r) =>
          r.rows.map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i]]))),
        ),
        read: ranges.reduce((n, r) => n + r.read, 0),
        rejects: buildRejectRows(
          RUN,
          ranges.flatMap((r) => r.rejects),
        ),
        cursor: ranges.reduce<string | null>(
          (max, r) => (r.cursor !== null && (max === null || r.cursor > max) ? r.cursor : max),
          null,
        ),
      };
    } finally {
      closeRangeReaders(readers);
    }
  };

  /** The load wrote what one thread maps: the same rows in order, the same rejects and records read, and no stage file is left. */
  const assertAsOneThread = (
    loaded: Awaited<ReturnType<typeof loadStaged>>,
    expected: ReturnType<typeof mappedOnOneThread>,
  ) => {
    assert.deepEqual(loaded.rows, expected.rows);
    assert.deepEqual(loaded.rejects, expected.rejects);
    assert.equal(loaded.totals.read, expected.read);
    assert.equal(loaded.stageLeft, false);
  };

  before(async () => {
    dir = await createTempDir('hub-stage-thread-');
    sourceFile = path.join(dir, 'people.sqlite');
    writeSource(sourceFile);
    await writeDefinition(
      dir,
      'reg-people',
      peopleDefinition(sourceFile, { batch_size: BATCH, mode: 'full' }),
    );
    def = (await readConnectorDefinitions(dir))[0]!;
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('each thread writes ranges; the table holds the rows one thread maps, in source order, and the stage file is gone', async () => {
    const expected = mappedOnOneThread();
    const loaded = await loadStaged();
    assert.ok(loaded.threads.includes('worker') && loaded.threads.includes('main'), loaded.threads.join(' '));
    assert.ok(loaded.totals.staged > 0 && loaded.totals.rows > 0, JSON.stringify(loaded.totals));
    assert.ok(expected.rows.length > 2000, `${expected.rows.length} rows`);
    assert.ok(expected.rejects.length > 20, `${expected.rejects.length} rejects`);
    assertAsOneThread(loaded, expected);
    assert.equal(loaded.totals.rows + loaded.totals.staged, expected.rows.length);
    assert.equal(loaded.totals.rejected, expected.rejects.length);
    assert.equal(loaded.cursor, expected.cursor);
  });

  it('a stage thread that fails to start, or fails on its first range, leaves every range to this thread', async () => {
    const expected = mappedOnOneThread();
    const failing = path.join(dir, 'failing-stage-worker.cjs');
    await writeFile(
      failing,
      "require('node:worker_threads').parentPort.postMessage({ type: 'failed', message: 'no' });\n",
    );
    for (const workerUrl of [pathToFileURL(path.join(dir, 'missing.cjs')), pathToFileURL(failing)]) {
      const loaded = await loadStaged({ workerUrl });
      assert.deepEqual(new Set(loaded.threads), new Set(['main']));
      assertAsOneThread(loaded, expected);
    }
  });

  it('a stage thread that stops midway has its ranges read again by this thread', async () => {
    const expected = mappedOnOneThread();
    // A stage thread that reports two ranges from the back, then exits without saying it is done.
    const stopping = path.join(dir, 'stopping-stage-worker.cjs');
    await writeFile(
      stopping,
      `const { parentPort, workerData } = require('node:worker_threads');
       const claims = new BigInt64Array(workerData.claims);
       for (let i = 0; i < 2; i++) {
         const seen = Atomics.load(claims, 0);
         const next = seen >> 32n, end = seen & 0xffffffffn;
         if (next >= end) break;
         if (Atomics.compareExchange(claims, 0, seen, (next << 32n) | (end - 1n)) !== seen) { i--; continue; }
         parentPort.postMessage({ type: 'range', k: Number(end - 1n), read: 1, rows: 1, rejects: [], cursor: null });
       }
       process.exit(3);\n`,
    );
    const loaded = await loadStaged({ workerUrl: pathToFileURL(stopping) });
    assertAsOneThread(loaded, expected);
    assert.equal(loaded.totals.staged, 0);
  });

  it('loads one state of a source that is being written, never a mix of two', async () => {
    const copy = path.join(dir, 'rewritten-staged.sqlite');
    writeSource(copy);
    const rewriting = await startRewriting(copy);
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const { rows } = await loadStaged({}, 2, copy);
        const versions = new Set(rows.map((row) => row.full_name));
        assert.equal(versions.size, 1, `one load saw ${versions.size} versions of the names`);
      }
    } finally {
      assert.ok((await rewriting.stop()) > 1);
    }
  });

  it('an append that fails (its stage file gone) fails the load clearly, and leaves no stage file', async () => {
    const { knex, writer, stageFile } = await openWarehouse(sourceFile);
    let staged = false;
    try {
      await assert.rejects(async () => {
        let first = true;
        for await (const batch of stagedBatches(sourceFile, stageFile, { records: null })) {
          // On a busy machine the stage thread may start after this thread has read every range.
          if (first) await untilStaged(stageFile);
          first = false;
          if (batch.staged !== undefined) {
            staged = true;
            await rm(batch.staged.file);
            await writer.appendStaged!(batch.staged.file, RUN);
          }
          await writer.write(batch.rows);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      }, /no such table: hub_stage\.staged_rows/);
      assert.ok(staged, 'the stage thread wrote no range');
      assert.equal(existsSync(stageFile), false);
      // The writer's connection is free of the stage: the next load can attach its own.
      await knex.raw("ATTACH DATABASE ':memory:' AS hub_stage");
    } finally {
      await knex.destroy();
    }
  });

  it('a table that can no longer be read in ranges when the load starts is read by the one-thread path', async () => {
    const oneThreadBatch = { read: 1, rows: [['one thread']], rejects: [], deletes: [] };
    const batches: LoadBatch[] = [];
    for await (const batch of loadWithStageThread(
      () => null,
      () => toAsync([oneThreadBatch]),
      def,
      DEFAULT_NATIONAL_ID_RULE,
      location(sourceFile),
      { records: null },
      RUN,
      path.join(dir, 'unused.stage'),
    ))
      batches.push(batch);
    assert.deepEqual(batches, [oneThreadBatch]);
  });

  it('a stage file that cannot be created (its folder is missing) leaves every range to this thread', async () => {
    const expected = mappedOnOneThread();
    const threads: string[] = [];
    let read = 0;
    const stageFile = path.join(dir, 'missing', 'run-1.stage');
    for await (const batch of stagedBatches(
      sourceFile,
      stageFile,
      { records: null },
      {
        onRange: (thread) => threads.push(thread),
      },
    )) {
      assert.equal(batch.staged, undefined);
      read += batch.read;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    assert.deepEqual(new Set(threads), new Set(['main']));
    assert.equal(read, expected.read);
  });

  it("a run cut off with its process is failed at the connector's next run, and its stage file removed", async () => {
    const runDir = await createTempDir('hub-stage-cut-');
    const warehouseFile = path.join(runDir, 'hub.sqlite');
    const ctx = openTestContext(`sqlite:${warehouseFile}`, runDir);
    try {
      await writeDefinition(
        ctx.config.connectorsDir,
        'reg-people',
        peopleDefinition(sourceFile, { batch_size: BATCH, mode: 'full' }),
      );
      await prepareWarehouse(ctx);
      const definition = (await readConnectorDefinitions(ctx.config.connectorsDir))[0]!;
      const first = await runConnector(definition, ctx, { full: true });
      // As a process that died mid-load leaves it: the run still marked running, its stage beside the warehouse.
      await ctx.knex('hub_connector_runs').where({ id: first.run_id }).update({ status: 'running' });
      const stageFile = `${warehouseFile}.run-${first.run_id}.stage`;
      await writeFile(stageFile, 'rows of a load that was cut off');
      const next = await runConnector(definition, ctx, { full: true });
      assert.equal(next.status, 'succeeded');
      const cut = await ctx
        .knex('hub_connector_runs')
        .where({ id: first.run_id })
        .first<{ status: string; error: string | null }>('status', 'error');
      assert.equal(cut?.status, 'failed');
      assert.match(String(cut?.error), /^interrupted/);
      assert.equal(existsSync(stageFile), false);
    } finally {
      await closeContext(ctx);
      await rm(runDir, { recursive: true, force: true });
    }
  });

  it('a connector run over 120,000 source rows (two threads by default) writes what one thread writes', async () => {
    const bigDir = await createTempDir('hub-stage-run-');
    try {
      const bigSource = path.join(bigDir, 'people.sqlite');
      writeSource(bigSource, PEOPLE, 120_000);
      const ctx = openTestContext(`sqlite:${path.join(bigDir, 'hub.sqlite')}`, bigDir);
      try {
        await writeDefinition(
          ctx.config.connectorsDir,
          'reg-people',
          peopleDefinition(bigSource, { batch_size: 1000, mode: 'full' }),
        );
        await prepareWarehouse(ctx);
        const definition = (await readConnectorDefinitions(ctx.config.connectorsDir))[0]!;
        const progress: Record<string, number[]> = {};
        const outcome = async (threads: string) => {
          const reads: number[] = (progress[threads] = []);
          const summary = await runConnector(
            definition,
            { ...ctx, env: { HUB_LOAD_THREADS: threads } },
            {
              full: true,
              onProgress: (stats, phase) => void (phase === 'loading' && reads.push(stats.read)),
            },
          );
          return {
            counts: [summary.status, summary.read, summary.inserted, summary.rejected, summary.watermark_to],
            rows: await ctx.knex('reg_people').orderByRaw('rowid').select(),
            rejects: await ctx
              .knex('hub_rejects')
              .where({ run_id: summary.run_id })
              .orderBy('id')
              .select('source_key', 'reason', 'raw_row'),
          };
        };
        const one = await outcome('1');
        const two = await outcome('auto');
        assert.equal(one.counts[0], 'succeeded');
        assert.ok(one.rows.length > 90_000, `${one.rows.length} rows`);
        assert.deepEqual(two.counts, one.counts);
        assert.deepEqual(two.rows, one.rows);
        assert.deepEqual(two.rejects, one.rejects);
        const left = (await readdir(bigDir)).filter((f) => f.endsWith('.stage'));
        assert.deepEqual(left, []);
        // The run's progress follows both threads as they go, not this one until the stage is
        // appended: it never goes down, and its report before the last is within a few batches
        // of the end (the stage thread's last ranges may still be on their way), not half.
        const reads = progress['auto']!;
        assert.ok(reads.length > 10, `${reads.length} reports`);
        assert.ok(
          reads.every((n, i) => i === 0 || n >= reads[i - 1]!),
          reads.join(' '),
        );
        assert.equal(reads.at(-1), two.counts[1]);
        assert.ok(reads.at(-2)! >= Number(two.counts[1]) - 5000, `${reads.at(-2)} of ${two.counts[1]}`);
      } finally {
        await closeContext(ctx);
      }
    } finally {
      await rm(bigDir, { recursive: true, force: true });
    }
  });
});

describeEachDatabase(
  'Full loads from a SQLite table with HUB_LOAD_THREADS 1 and 2 (two reading threads into PostgreSQL, a stage thread into SQLite)',
  (db) => {
    let dir: string;
    let ctx: AppContext;
    let sourceFile: string;

    const connector = async (name = 'reg-people') =>
      (await readConnectorDefinitions(ctx.config.connectorsDir)).find((d) => d.name === name)!;
    const runWith = async (threads: string, name = 'reg-people') =>
      runConnector(await connector(name), { ...ctx, env: { HUB_LOAD_THREADS: threads } }, { full: true });
    /** What a full load leaves: the rows in the order they were written, and the run's rejects. */
    const outcome = async (summary: RunSummary) => ({
      counts: [summary.status, summary.read, summary.inserted, summary.rejected, summary.watermark_to],
      rows: await ctx
        .knex('reg_people')
        .select('national_id', 'full_name', 'gender', 'birth_date')
        .orderByRaw(db.name === 'postgres' ? 'ctid' : 'rowid'),
      rejects: await ctx
        .knex('hub_rejects')
        .where({ run_id: summary.run_id })
        .orderBy(['source_key', 'reason', 'raw_row'])
        .select('source_key', 'reason', 'raw_row'),
    });

    before(async () => {
      dir = await createTempDir('hub-two-threads-');
      sourceFile = path.join(dir, 'people.sqlite');
      writeSource(sourceFile);
      ctx = openTestContext(db.url(), dir);
      await writeDefinition(
        ctx.config.connectorsDir,
        'reg-people',
        peopleDefinition(sourceFile, { batch_size: BATCH, mode: 'full' }),
      );
      await prepareWarehouse(ctx);
    });

    after(async () => {
      await closeContext(ctx);
      await rm(dir, { recursive: true, force: true });
    });

    it('writes what one thread writes: the same rows in the same order, the same rejects, the first row of a repeated key, the same watermark', async () => {
      const one = await outcome(await runWith('1'));
      const two = await outcome(await runWith('2'));
      assert.equal(one.counts[0], 'succeeded');
      assert.ok(one.rows.length > 2000, `${one.rows.length} rows`);
      const reasons = one.rejects.map((r: { reason: string }) => r.reason);
      assert.ok(reasons.some((r) => r.startsWith('duplicate record key')));
      assert.ok(reasons.some((r) => r.includes('check digit')));
      assert.ok(one.rows.some((r: { full_name: string }) => r.full_name === 'line\nbreak 2'));
      assert.deepEqual(two.counts, one.counts);
      assert.deepEqual(two.rows, one.rows);
      assert.deepEqual(two.rejects, one.rejects);
    });

    it('loads one state of a source that is being written, never a mix of two', async () => {
      const rewriting = await startRewriting(sourceFile);
      const versionsSeen: string[] = [];
      try {
        for (let attempt = 0; attempt < 3; attempt++) {
          const summary = await runWith('2');
          assert.equal(summary.status, 'succeeded', summary.error ?? '');
          const names = (await ctx.knex('reg_people').distinct('full_name').pluck('full_name')) as string[];
          assert.equal(names.length, 1, `one load read ${names.length} versions of the names`);
          versionsSeen.push(names[0]!);
        }
      } finally {
        await rewriting.stop();
      }
      assert.ok(new Set(versionsSeen).size > 1, `every load read ${versionsSeen[0]}`);
    });

    it('refuses a HUB_LOAD_THREADS that is not 1, 2 or auto, naming it, and leaves the table as it was', async () => {
      const before = await ctx.knex('reg_people').orderBy('national_id').select();
      const summary = await runWith('many');
      assert.equal(summary.status, 'failed');
      assert.match(summary.error ?? '', /HUB_LOAD_THREADS must be 1, 2 or auto, not "many"/);
      assert.deepEqual(await ctx.knex('reg_people').orderBy('national_id').select(), before);
    });
  },
);

describeEachDatabase('A first incremental run into an empty table, read in ranges on two threads', (db) => {
  let dir: string;
  let ctx: AppContext;
  /** Source files: every key once; some keys sent twice (two rows); one record sent and then deleted. */
  const SOURCES = ['unique', 'repeated', 'deleted'] as const;

  /** The connector's first incremental run with HUB_LOAD_THREADS set, into an emptied table, and what it leaves. */
  const firstRun = async (source: (typeof SOURCES)[number], threads: string) => {
    const name = `reg-${source}`;
    const table = `reg_${source}`;
    await ctx.knex(table).delete();
    await ctx.knex('hub_connectors').where({ name }).update({ watermark: null, tombstone_watermark: null });
    const definition = (await readConnectorDefinitions(ctx.config.connectorsDir)).find(
      (d) => d.name === name,
    )!;
    const reads: number[] = [];
    const summary = await runConnector(
      definition,
      { ...ctx, env: { HUB_LOAD_THREADS: threads } },
      { onProgress: (stats, phase) => void (phase === 'loading' && reads.push(stats.read)) },
    );
    return {
      counts: [
        summary.status,
        summary.error,
        summary.read,
        summary.inserted,
        summary.updated,
        summary.deleted,
        summary.rejected,
        summary.watermark_to,
      ],
      rows: await ctx
        .knex(table)
        .orderBy('national_id')
        .select('national_id', 'full_name', 'gender', 'birth_date'),
      rejects: await ctx
        .knex('hub_rejects')
        .where({ run_id: summary.run_id })
        .orderBy(['source_key', 'reason', 'raw_row'])
        .select('source_key', 'reason', 'raw_row'),
      /** Whether the source was read a second time: the records read so far fell back. */
      readAgain: reads.some((n, i) => i > 0 && n < reads[i - 1]!),
    };
  };

  before(async () => {
    dir = await createTempDir('hub-first-run-ranges-');
    ctx = openTestContext(db.url(), dir);
    for (const source of SOURCES) {
      const file = path.join(dir, `${source}.sqlite`);
      writeSource(file);
      const sqlite = new Database(file);
      // Row n of the source repeats row n - 1's key where n % 151 is 0.
      if (source !== 'repeated') sqlite.exec('DELETE FROM people WHERE rowid % 151 = 0');
      if (source === 'deleted') {
        const row = sqlite.prepare('SELECT * FROM people WHERE rowid = 10').get() as Record<string, unknown>;
        sqlite
          .prepare(
            'INSERT INTO people (NATNO, NAME_AR, SEX, DOB, UPDATED_AT, DELETED) VALUES (?, ?, ?, ?, ?, 1)',
          )
          .run(row.NATNO, row.NAME_AR, row.SEX, row.DOB, '2026-12-31T00:00:00');
      }
      sqlite.close();
      await writeDefinition(
        ctx.config.connectorsDir,
        `reg-${source}`,
        peopleDefinition(file, {
          name: `reg-${source}`,
          target: { table: `reg_${source}`, label: { en: source, ar: source } },
          batch_size: BATCH,
        }),
      );
    }
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('ends as the run reading the feed in order ends, and reads the source again in order only when a record comes twice', async () => {
    for (const source of SOURCES) {
      const inOrder = await firstRun(source, '1');
      const inRanges = await firstRun(source, '2');
      assert.equal(inOrder.counts[0], 'succeeded', String(inOrder.counts[1]));
      assert.ok(inOrder.rows.length > 2000, `${source}: ${inOrder.rows.length} rows`);
      assert.ok(inOrder.rejects.length > 20, `${source}: ${inOrder.rejects.length} rejects`);
      assert.deepEqual(inRanges.counts, inOrder.counts, source);
      assert.deepEqual(inRanges.rows, inOrder.rows, source);
      assert.deepEqual(inRanges.rejects, inOrder.rejects, source);
      assert.equal(inOrder.readAgain, false, source);
      // Read in ranges, a record sent twice sends the run back to the feed in order.
      assert.equal(inRanges.readAgain, source !== 'unique', source);
    }
    // The record sent and then deleted is not in the table, and was counted as read.
    const deleted = await ctx.knex('reg_deleted').count({ n: '*' }).first();
    const unique = await ctx.knex('reg_unique').count({ n: '*' }).first();
    assert.equal(Number(deleted?.n), Number(unique?.n) - 1);
  });
});
