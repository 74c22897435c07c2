import os from 'node:os';
import type { Knex } from 'knex';
import { type Clock, isoNow } from '../warehouse/core/clock.ts';
import { removeStageFile } from '../warehouse/load/stage-file.ts';
import type { NationalIdRule } from '../warehouse/core/national-id.ts';
import { withFullLoadSettings, type Dialect, type LoadThreads } from '../warehouse/dialects/index.ts';
import { loadFull } from '../warehouse/load/full-load.ts';
import { loadIncremental } from '../warehouse/load/incremental-load.ts';
import type { LoadBatch, LoadFeed, LoadPhase, LoadStats } from '../warehouse/load/load-types.ts';
import { buildKeyText } from '../warehouse/load/feed-deletions.ts';
import { acquireLock } from '../warehouse/lock.ts';
import { recordAudit } from '../warehouse/audit/record-audit.ts';
import { cursorText, maxCursor } from './compare-cursor.ts';
import type { ConnectorDefinition } from './definition.ts';
import { compileArrayRowMapper, compileRowMapper, type RowMapper } from './mapping/compile-row-mapper.ts';
import { addRecord, newBatch, type MappedChunk } from './map-records.ts';
import { buildRegistryTableSpec } from './registry-spec.ts';
import { openSource } from './sources/open-source.ts';
import { recordProgressOnRun } from './run-progress.ts';
import {
  closeRangeReaders,
  openRangeReaders,
  readInTwoThreads,
  TWO_THREAD_MIN_ROWS,
} from './parallel-read/read-in-two-threads.ts';
import { loadWithStageThread } from './parallel-read/load-with-stage-thread.ts';
import type { ReadOptions, Source, SourceRecord } from './sources/source.ts';
import { notifyAfterRun } from '../server/dci/notify-after-run.ts';
import { inBatches } from '../warehouse/core/in-batches.ts';
import { ensureDeclaredIndexes } from '../warehouse/declared-indexes.ts';
import type { RegistryTableSpec } from '../warehouse/registry-tables.ts';

export interface ConnectorContext {
  knex: Knex;
  dialect: Dialect;
  clock: Clock;
  nationalIdRule: NationalIdRule;
  env?: NodeJS.ProcessEnv;
}

export type RunTrigger = 'manual' | 'schedule' | 'startup';

export interface RunOptions {
  /** Replace the whole table even when the connector is incremental. */
  full?: boolean;
  trigger?: RunTrigger;
  /** Who started the run, for the audit log (defaults to the trigger). */
  actor?: string;
  /** Called once the run holds the connector's lock and has its row in the run history. */
  onStart?: (run: { run_id: number; mode: 'full' | 'incremental'; started_at: string }) => void;
  onProgress?: (stats: LoadStats, phase: LoadPhase) => void;
}

export interface RunSummary extends LoadStats {
  run_id: number;
  connector: string;
  table: string;
  mode: 'full' | 'incremental';
  status: 'succeeded' | 'failed';
  started_at: string;
  finished_at: string;
  watermark_from: string | null;
  watermark_to: string | null;
  error: string | null;
}

interface ConnectorStateRow {
  watermark: string | null;
  tombstone_watermark: string | null;
}

/** The warehouse lock a connector's run holds from before its record is written until it has returned. */
export const connectorLockName = (name: string) => `connector:${name}`;

/**
 * Runs one connector: lock, read the source, map and validate, load, record the run. The
 * watermark moves in the same transaction that commits the data, so it never runs ahead of it.
 */
export async function runConnector(
  def: ConnectorDefinition,
  ctx: ConnectorContext,
  options: RunOptions = {},
): Promise<RunSummary> {
  const mode = options.full === true ? 'full' : def.mode;
  const lock = await acquireLock(ctx.knex, connectorLockName(def.name), { clock: ctx.clock });
  try {
    await failInterruptedRuns(ctx, def.name);
    const state = await ctx.knex<ConnectorStateRow>('hub_connectors').where('name', def.name).first();
    if (state === undefined) throw new Error(`connector ${def.name} is not registered: run hub migrate`);
    const since = mode === 'incremental' ? state.watermark : null;
    const tombstonesSince = mode === 'incremental' ? state.tombstone_watermark : null;
    const startedAt = isoNow(ctx.clock);
    const inserted: Array<{ id: number | string }> = await ctx.knex('hub_connector_runs').insert(
      {
        connector: def.name,
        mode,
        trigger: options.trigger ?? 'manual',
        status: 'running',
        phase: 'reading',
        started_at: startedAt,
        watermark_from: since,
      },
      ['id'],
    );
    const runId = Number(inserted[0]?.id);
    options.onStart?.({ run_id: runId, mode, started_at: startedAt });
    const summary: RunSummary = {
      run_id: runId,
      connector: def.name,
      table: def.target.table,
      mode,
      status: 'failed',
      started_at: startedAt,
      finished_at: startedAt,
      watermark_from: since,
      watermark_to: since,
      error: null,
      read: 0,
      inserted: 0,
      updated: 0,
      deleted: 0,
      rejected: 0,
    };
    const cursors = { records: since, tombstones: tombstonesSince };
    let source: Source | null = null;
    try {
      const opened = openSource(def, ctx.env);
      source = opened;
      // Read again from the start (a run handing over to another path): the cursors start over too.
      const readFeed = () => {
        Object.assign(cursors, { records: since, tombstones: tombstonesSince });
        return readBatches(
          def,
          ctx.nationalIdRule,
          opened,
          mode === 'incremental' ? { since, tombstonesSince } : null,
          cursors,
        );
      };
      const run = {
        id: runId,
        connector: def.name,
        spec: buildRegistryTableSpec(def),
        onProgress: recordProgressOnRun(ctx.knex, runId, options.onProgress),
        commit: async (trx: Knex.Transaction, stats: LoadStats) => {
          Object.assign(summary, stats, {
            status: 'succeeded',
            finished_at: isoNow(ctx.clock),
            watermark_to: cursors.records,
          });
          await trx('hub_connector_runs').where({ id: runId }).update(runRecord(summary));
          await trx('hub_connectors').where({ name: def.name }).update({
            watermark: cursors.records,
            tombstone_watermark: cursors.tombstones,
            last_run_id: runId,
          });
        },
      };
      const loadCtx = { ...ctx, threads: loadThreads(ctx.env ?? process.env) };
      const withSettings = <T>(work: () => Promise<T>) =>
        withFullLoadSettings(ctx.dialect, ctx.knex, work, loadCtx.threads);
      if (mode === 'full') {
        await withSettings(async () => {
          const full = readWholeSource(loadCtx, def, opened, cursors, readFeed, runId, {
            incremental: false,
          });
          await loadFull({ ...loadCtx, writeInThisThread: full.writeInThisThread }, run, full.batches);
          await buildDeclaredIndexes(ctx, run.spec, summary, { analyzed: true });
        });
      } else {
        const readUnordered =
          since === null && tombstonesSince === null
            ? readFirstRunInRanges(loadCtx, def, opened, cursors, readFeed, runId)
            : undefined;
        await loadIncremental(loadCtx, run, readFeed, readUnordered);
        // An index build is bulk work whatever the run: on SQLite its sort is held to the same cache.
        await withSettings(() => buildDeclaredIndexes(ctx, run.spec, summary, { analyzed: false }));
      }
    } catch (err) {
      Object.assign(summary, {
        status: 'failed',
        finished_at: isoNow(ctx.clock),
        watermark_to: since,
        error: describeError(err),
      });
      await ctx.knex('hub_connector_runs').where({ id: runId }).update(runRecord(summary));
      await ctx.knex('hub_connectors').where({ name: def.name }).update({ last_run_id: runId });
    } finally {
      await source?.close().catch(() => undefined);
    }
    await recordAudit(ctx.knex, ctx.clock, {
      actor: options.actor ?? options.trigger ?? 'manual',
      entity: def.entity,
      action: 'connector.run',
      target: def.name,
      details: { ...summary },
    });
    await notifyAfterRun(ctx, summary);
    return summary;
  } finally {
    await lock.release();
  }
}

/**
 * The definition's `indexes:` once the data has committed. The run has succeeded by then, so an
 * index that cannot be built is written on the run as its error, not turned into a failed run;
 * the next run tries again. A full load analyzed the table just before swapping it in, and the
 * planner's statistics are per column, so an index on plain columns gives it nothing new: only a
 * table loaded incrementally is analyzed again here.
 */
async function buildDeclaredIndexes(
  ctx: ConnectorContext,
  spec: RegistryTableSpec,
  summary: RunSummary,
  table: { analyzed: boolean },
): Promise<void> {
  try {
    const { created } = await ensureDeclaredIndexes(ctx.knex, spec);
    if (created.length > 0 && !table.analyzed) await ctx.dialect.analyzeTable(ctx.knex, spec.table);
  } catch (err) {
    summary.error = `loaded, but the declared indexes were not all built: ${describeError(err)}`;
    await ctx.knex('hub_connector_runs').where({ id: summary.run_id }).update({ error: summary.error });
  }
}

function runRecord(s: RunSummary) {
  return {
    status: s.status,
    phase: null,
    finished_at: s.finished_at,
    rows_read: s.read,
    rows_inserted: s.inserted,
    rows_updated: s.updated,
    rows_deleted: s.deleted,
    rows_rejected: s.rejected,
    watermark_to: s.watermark_to,
    error: s.error,
  };
}

function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.slice(0, 2000);
}

/**
 * A run still marked running when its lock is free was cut off (the process died), and so was
 * the removal of the stage file its second thread may have been writing beside the warehouse.
 */
async function failInterruptedRuns(ctx: ConnectorContext, connector: string) {
  const interrupted = (await ctx
    .knex('hub_connector_runs')
    .where({ connector, status: 'running' })
    .pluck('id')) as number[];
  await markRunsInterrupted(ctx, interrupted, 'interrupted: the hub process stopped during the run');
}

/**
 * Marks runs that were cut off failed with the reason, and removes the stage files they may have
 * left; a run that finished meanwhile is left as it is.
 */
export async function markRunsInterrupted(
  ctx: Pick<ConnectorContext, 'knex' | 'dialect' | 'clock'>,
  runIds: number[],
  reason: string,
): Promise<void> {
  if (runIds.length === 0) return;
  await ctx
    .knex('hub_connector_runs')
    .whereIn('id', runIds)
    .where({ status: 'running' })
    // The counts its load last wrote stay: how far it got before it was cut off.
    .update({ status: 'failed', phase: null, finished_at: isoNow(ctx.clock), error: reason });
  for (const id of runIds) {
    const stageFile = stageFileOfRun(ctx, id);
    if (stageFile !== null) removeStageFile(stageFile);
  }
}

/** The stage file a run's second thread writes beside the warehouse, where the dialect takes one. */
const stageFileOfRun = (ctx: Pick<ConnectorContext, 'knex' | 'dialect'>, runId: number) =>
  ctx.dialect.stageFileFor?.(ctx.knex, `run-${runId}`) ?? null;

/**
 * A connector's first incremental run (no watermark yet) reads the whole table, as a full load
 * does, and where a full load would read it on two threads, this run may too (`readWholeSource`):
 * in ranges of rowids, so out of the cursor's order, with deleted records read as deletions.
 * The load reads the feed again in order if a record comes twice (`loadIncremental`). A source
 * with a tombstone table keeps the feed in order: its deletions come from another table.
 */
function readFirstRunInRanges(
  ctx: ConnectorContext & { threads: LoadThreads },
  def: ConnectorDefinition,
  source: Source,
  cursors: { records: string | null },
  inOrder: () => AsyncIterable<LoadBatch>,
  runId: number,
): (() => LoadFeed) | undefined {
  if (def.source.kind !== 'sql' || def.source.tombstones !== undefined) return undefined;
  if (source.sqliteTable === undefined || !mayUseTwoThreads(ctx.threads)) return undefined;
  return () => {
    cursors.records = null;
    return readWholeSource(ctx, def, source, cursors, inOrder, runId, { incremental: true });
  };
}

/**
 * A large SQLite table read, mapped and encoded on two threads wherever the machine has two
 * cores, and any other source by `oneThread`: into a database that takes COPY text, both
 * threads encode ranges that this one writes (`readInTwoThreads`); into a SQLite warehouse,
 * each thread writes its own ranges, the second into a stage file that this thread's writer
 * appends (`loadWithStageThread`). Unlike the SQLite writer thread
 * (warehouse/dialects/sqlite.ts), it is not held back for a busy machine: the threads share the
 * ranges by what each has time for, so on a busy machine the second thread costs its start and
 * does less. (Judged by idle cores, it was never taken right after another load, while
 * PostgreSQL vacuumed the rows just written.) HUB_LOAD_THREADS=1 keeps every load on one thread
 * (on SQLite, without its writer thread too); 2 takes the second one for any table the source
 * allows, however small (and SQLite's writer thread whether or not a core is idle).
 */
function readWholeSource(
  ctx: ConnectorContext & { threads: LoadThreads },
  def: ConnectorDefinition,
  source: Source,
  cursors: { records: string | null },
  oneThread: () => AsyncIterable<LoadBatch>,
  runId: number,
  options: { incremental: boolean },
): LoadFeed {
  const alone = () => ({ batches: oneThread(), writeInThisThread: false });
  const location = source.sqliteTable;
  if (location === undefined || !mayUseTwoThreads(ctx.threads)) return alone();
  const minRows = ctx.threads === 2 ? 0 : TWO_THREAD_MIN_ROWS;
  if (ctx.dialect.takesCopyText === true)
    return {
      batches: readInTwoThreads(def, ctx.nationalIdRule, location, cursors, oneThread, {
        minRows,
        incremental: options.incremental,
      }),
      writeInThisThread: false,
    };
  const stageFile = stageFileOfRun(ctx, runId);
  if (stageFile === null) return alone();
  const openReaders = () => openRangeReaders(def, ctx.nationalIdRule, location, minRows, options);
  // A table that cannot be read in ranges keeps the writer thread that other sources have.
  const readable = openReaders();
  if (readable === null) return alone();
  closeRangeReaders(readable);
  return {
    batches: loadWithStageThread(
      openReaders,
      oneThread,
      def,
      ctx.nationalIdRule,
      location,
      cursors,
      { id: runId, connector: def.name },
      stageFile,
    ),
    writeInThisThread: true,
  };
}

/** HUB_LOAD_THREADS allows a load's second thread here: 2, or auto on a machine of two cores or more. */
const mayUseTwoThreads = (threads: LoadThreads) =>
  threads === 2 || (threads === 'auto' && os.availableParallelism() >= 2);

function loadThreads(env: NodeJS.ProcessEnv): LoadThreads {
  const value = env.HUB_LOAD_THREADS?.trim() ?? '';
  if (value === '' || value === 'auto') return 'auto';
  if (value === '1' || value === '2') return Number(value) as 1 | 2;
  throw new Error(`HUB_LOAD_THREADS must be 1, 2 or auto, not ${JSON.stringify(value)}`);
}

/**
 * A source that never waits on I/O (a SQLite file, a CSV already in the page cache) resolves
 * every step in microtasks, and the event loop would not take one HTTP request until the whole
 * load ended. One macrotask turn per batch lets API requests in between batches.
 */
const yieldToRequests = () => new Promise<void>((resolve) => setImmediate(resolve));

const CHUNK = 1000;

async function* readChunks(
  def: ConnectorDefinition,
  rule: NationalIdRule,
  source: Source,
  options: ReadOptions,
): AsyncIterable<MappedChunk<unknown[]> | MappedChunk<SourceRecord>> {
  if (source.readChunks !== undefined) {
    let mapper: RowMapper<unknown[]> | null = null;
    for await (const chunk of source.readChunks(options, Math.min(CHUNK, def.batch_size))) {
      mapper ??= compileArrayRowMapper(def, rule, chunk.fields);
      const fields = chunk.fields;
      yield {
        mapper,
        records: chunk.rows,
        describe: (row: unknown[]) => Object.fromEntries(fields.map((f, i) => [f, row[i]])),
      };
    }
    return;
  }
  const mapper = compileRowMapper(def, rule);
  for await (const records of inBatches(source.read(options), Math.min(CHUNK, def.batch_size)))
    yield { mapper, records, describe: (r: SourceRecord) => r };
}

async function* readBatches(
  def: ConnectorDefinition,
  rule: NationalIdRule,
  source: Source,
  incremental: { since: string | null; tombstonesSince: string | null } | null,
  cursors: { records: string | null; tombstones: string | null },
): AsyncIterable<LoadBatch> {
  let batch = newBatch();
  // A batch is applied rows first, then deletions: a record deleted and then registered again
  // must not share a batch with its deletion, or the deletion would remove it.
  const deletedInBatch = new Set<string>();
  const options: ReadOptions = { since: incremental?.since ?? null, ordered: incremental !== null };
  for await (const chunk of readChunks(def, rule, source, options)) {
    const mapper = (chunk as MappedChunk<unknown>).mapper;
    for (const record of chunk.records as unknown[]) {
      if (deletedInBatch.size > 0 && !mapper.isDeletion(record)) {
        const key = mapper.mapKey(record);
        if (key !== null && deletedInBatch.has(buildKeyText(key))) {
          yield batch;
          batch = newBatch();
          deletedInBatch.clear();
        }
      }
      batch.read++;
      const deleted = addRecord(batch, chunk as MappedChunk<unknown>, record, incremental !== null, cursors);
      if (deleted !== null) deletedInBatch.add(buildKeyText(deleted));
      if (batch.read >= def.batch_size) {
        await yieldToRequests();
        yield batch;
        batch = newBatch();
        deletedInBatch.clear();
      }
    }
  }
  if (
    incremental !== null &&
    source.readTombstones !== undefined &&
    def.source.kind === 'sql' &&
    def.source.tombstones
  ) {
    const tombstones = def.source.tombstones;
    const mapper = compileRowMapper(def, rule);
    for await (const tombstone of source.readTombstones({ since: incremental.tombstonesSince })) {
      batch.read++;
      cursors.tombstones = maxCursor(cursors.tombstones, cursorText(tombstone[tombstones.cursor]));
      const record: SourceRecord = {};
      def.key.forEach(
        (column, i) => (record[def.columns[column]!.from ?? column] = tombstone[tombstones.key[i]!]),
      );
      const key = mapper.mapKey(record);
      if (key === null)
        batch.rejects.push({
          sourceKey: mapper.sourceKey(record),
          reason: 'tombstone key is not valid',
          raw: tombstone,
        });
      else batch.deletes.push(key);
      if (batch.read >= def.batch_size) {
        yield batch;
        batch = newBatch();
      }
    }
  }
  if (batch.read > 0) yield batch;
}
