/**
 * "Who read this person" by national ID, kept as sorted runs (a log-structured merge tree).
 *
 * The audit's record of whose data each answer returned is `hub_audit_subjects`, keyed by event:
 * an answer appends its rows at the end. Kept by national ID as well, each page of 200 persons
 * landed on 200 random pages of that key, and SQLite's WAL wrote every one of them whole at each
 * commit (about 0.8 MB per page of answers). Instead, subject rows are copied here in batches,
 * each sorted once by national ID into a run of its own, appended after every other run; runs of
 * one level are merged, a few thousand rows per transaction, into one of the next. A lookup seeks
 * each live run (a few dozen) and scans the rows not yet in a run.
 */
import type { Knex } from 'knex';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Clock, isoNow, systemClock } from '../core/clock.ts';
import { dialectOf } from '../dialects/index.ts';
import { inWriteTransaction } from '../write-transaction.ts';
import {
  copySortedRows,
  countLoggedRows,
  countRowsMissingFromRun,
  countRunRows,
  deleteRunRows,
  eventsBetween,
  listRun,
  makeRunLive,
  readAggregate,
  runsBetween,
  selectAbandonedMerge,
  selectBoundary,
  selectBuilding,
  selectHighestListedRun,
  selectHighestStoredRun,
  selectIndexedUpTo,
  selectListedRuns,
  selectListing,
  selectLiveRuns,
  selectLiveRunsInLogOrder,
  selectNextStoredRun,
  selectStillLive,
  selectTailEdge,
  selectTailEnd,
  touchRun,
  unlistAbandonedMerges,
  unlistRuns,
  WHO_READ_RUNS,
  WHO_READ_TABLE,
  type RunRow,
} from './who-read-statements.ts';

export { WHO_READ_RUNS, WHO_READ_TABLE };

export interface WhoReadIndexOptions {
  /** Subject rows in one new run; fewer wait for the next pass unless `flushTail`. */
  runRows?: number;
  /** Live runs of one level that are merged into one run of the next. */
  fanIn?: number;
  /** About how many rows one transaction of a merge copies or deletes, so the write lock is held briefly. */
  chunkRows?: number;
  /** Also put a tail shorter than `runRows` into a run (a quiet hub, the command line, tests). */
  flushTail?: boolean;
  /** Put the whole tail into one run, whatever its size (a migrated or copied log). */
  wholeTail?: boolean;
  clock?: Clock;
  /** Stops the pass between two transactions; a merge stopped this way is given up at once. */
  signal?: AbortSignal;
  /**
   * A pause after each of the pass's transactions. On SQLite a serving hub's turns of audit rows
   * wait for the write lock the pass holds; without a pause the pass's next transaction took the
   * lock again at once, and a merge's few dozen transactions in a row kept every answer waiting
   * for up to half a second (the serving hub's indexing sets it, see who-read-indexing.ts).
   */
  pauseMs?: number;
  /** Called before each transaction of a merge; tests use it to look at the index between them. */
  beforeMergeStep?: (step: MergeStep) => Promise<void>;
}

export type MergeStep = 'copy' | 'switch' | 'drop';

export interface WhoReadIndexReport {
  /** Subject rows put into new runs. */
  indexed: number;
  /** Runs merged into others. */
  merged: number;
  /** Rows deleted from runs that are no longer live. */
  dropped: number;
}

/** At 50 pages of answers a second (10,000 subject rows), a run about every two seconds. */
export const DEFAULT_RUN_ROWS = 20_000;
/**
 * Each merge level copies every row once more and deletes it once more, all of it work taken
 * from the answers (and, on SQLite, time holding their write lock), while a lookup only seeks
 * once more per run. Saved-query pages at 50 connections on a growing log (1,000,000 persons,
 * three runs of `npm run bench:queries` in a row): merging 8 at a time, 93%, 73%, 69% of the
 * bare server; 32 at a time, 111%, 87%, 89%.
 */
export const DEFAULT_FAN_IN = 32;
export const DEFAULT_CHUNK_ROWS = 20_000;
/** A merge that has not copied a chunk for this long was left by a process that stopped. */
const ABANDONED_MERGE_MS = 10 * 60_000;

interface Run {
  run: number;
  level: number;
  firstAuditId: number;
  lastAuditId: number;
  rows: number;
}

const toRun = (r: RunRow): Run => ({
  run: Number(r.run),
  level: r.level,
  firstAuditId: Number(r.first_audit_id),
  lastAuditId: Number(r.last_audit_id),
  rows: Number(r.row_count),
});

/** One of the pass's transactions, then its pause (WhoReadIndexOptions.pauseMs). */
async function writeStep<T>(
  knex: Knex,
  options: WhoReadIndexOptions,
  work: (trx: Knex.Transaction) => Promise<T>,
): Promise<T> {
  const result = await inWriteTransaction(knex, work);
  if ((options.pauseMs ?? 0) > 0) await sleep(options.pauseMs);
  return result;
}

/** Two hub hosts may index at once; each step that reads and writes the runs holds this lock. */
const lockRuns = (trx: Knex.Transaction) => dialectOf(trx).lockUntilCommit(trx, WHO_READ_RUNS);

/**
 * The level a run of this size belongs to: a run made by merging `fanIn` runs of level L is of
 * level L + 1, and a large first run (a migrated or copied log) starts where its size puts it,
 * rather than being merged again with every small one.
 */
export function levelOfSize(rows: number, runRows: number, fanIn: number): number {
  let level = 0;
  let size = runRows;
  while (rows > size * fanIn) {
    level += 1;
    size *= fanIn;
  }
  return level;
}

/** Brings the index up to date: new runs from the tail, then every merge due, then the rows of runs merged away. */
export async function indexWhoRead(
  knex: Knex,
  options: WhoReadIndexOptions = {},
): Promise<WhoReadIndexReport> {
  const report: WhoReadIndexReport = { indexed: 0, merged: 0, dropped: 0 };
  for (;;) {
    options.signal?.throwIfAborted();
    const rows = await appendRun(knex, options);
    report.indexed += rows;
    if (rows === 0) break;
  }
  for (;;) {
    options.signal?.throwIfAborted();
    const merged = await mergeRuns(knex, options);
    report.merged += merged;
    if (merged === 0) break;
  }
  report.dropped = await dropDeadRuns(knex, options);
  return report;
}

/** The last event whose subject rows are in a run: later ones are the tail. */
export async function fetchIndexedUpTo(executor: Knex | Knex.Transaction): Promise<number> {
  return readAggregate(await selectIndexedUpTo(executor)) ?? 0;
}

/** A run id above every run, live, being built or waiting to be dropped. */
async function nextRunId(trx: Knex.Transaction): Promise<number> {
  const listed = readAggregate(await selectHighestListedRun(trx)) ?? 0;
  const stored = readAggregate(await selectHighestStoredRun(trx)) ?? 0;
  return Math.max(listed, stored) + 1;
}

/**
 * Puts the next `runRows` subject rows (whole events) after the last run into a new run, sorted
 * by national ID. Returns the rows indexed: 0 when the tail is shorter and not flushed.
 */
async function appendRun(knex: Knex, options: WhoReadIndexOptions): Promise<number> {
  const runRows = options.runRows ?? DEFAULT_RUN_ROWS;
  const fanIn = options.fanIn ?? DEFAULT_FAN_IN;
  const wholeTail = options.wholeTail === true;
  const anyTail = options.flushTail === true || wholeTail;
  // Asked without the lock first: most passes of a serving hub find less than a run, and need
  // not hold the write lock (or pause) to learn it.
  const seenAfter = await fetchIndexedUpTo(knex);
  const seenEdge = wholeTail ? null : await findRunEdge(knex, seenAfter, runRows);
  if (seenEdge === null && !anyTail) return 0;
  return writeStep(knex, options, async (trx) => {
    await lockRuns(trx);
    const after = await fetchIndexedUpTo(trx);
    // The tail is only appended to, so an edge seen past the same last run still holds (none is
    // sought for the whole tail).
    const seenEdgeHolds = after === seenAfter || wholeTail;
    let last = seenEdgeHolds ? seenEdge : await findRunEdge(trx, after, runRows);
    if (last === null && anyTail) last = readAggregate(await selectTailEnd(trx, after));
    if (last === null) return 0;
    const run = await nextRunId(trx);
    await copySortedRows(trx, run, 'hub_audit_subjects', eventsBetween(after, last));
    const [counted] = await countRunRows(trx, run);
    const rows = Number(counted?.n ?? 0);
    await listRun(trx, {
      run,
      level: levelOfSize(rows, runRows, fanIn),
      first_audit_id: after + 1,
      last_audit_id: last,
      row_count: rows,
      state: 'live',
      touched_at: isoNow(options.clock ?? systemClock),
    });
    return rows;
  });
}

/** The last event of the next `runRows` subject rows after `after`, or null when the tail holds fewer. */
async function findRunEdge(
  db: Knex | Knex.Transaction,
  after: number,
  runRows: number,
): Promise<number | null> {
  const edge = await selectTailEdge(db, after, runRows);
  return edge === undefined ? null : Number(edge.audit_id);
}

/** The oldest `fanIn` live runs of the lowest level that has that many, or null. */
function pickMerge(live: readonly Run[], fanIn: number): Run[] | null {
  const byLevel = new Map<number, Run[]>();
  for (const run of live) byLevel.set(run.level, [...(byLevel.get(run.level) ?? []), run]);
  const levels = [...byLevel.keys()].sort((a, b) => a - b);
  for (const level of levels) {
    const runs = byLevel.get(level)!;
    if (runs.length >= fanIn) return runs.slice(0, fanIn);
  }
  return null;
}

/**
 * One merge, if one is due: the sources are copied into a new run in national-ID order, a
 * range of IDs per transaction, while lookups go on reading the sources; then one transaction
 * makes the new run live and the sources not. Returns the number of runs merged away (0 when
 * none was due, or another process merged the same runs first).
 */
async function mergeRuns(knex: Knex, options: WhoReadIndexOptions): Promise<number> {
  const fanIn = options.fanIn ?? DEFAULT_FAN_IN;
  const runRows = options.runRows ?? DEFAULT_RUN_ROWS;
  const chunkRows = options.chunkRows ?? DEFAULT_CHUNK_ROWS;
  const clock = options.clock ?? systemClock;
  // Asked again under the lock below; most passes end here without taking it.
  if (pickMerge((await selectLiveRuns(knex)).map(toRun), fanIn) === null) return 0;
  const planned = await writeStep(knex, options, async (trx) => {
    await lockRuns(trx);
    const live = (await selectLiveRuns(trx)).map(toRun);
    const sources = pickMerge(live, fanIn);
    if (sources === null) return null;
    const rows = sources.reduce((sum, r) => sum + r.rows, 0);
    const target: Run = {
      run: await nextRunId(trx),
      level: Math.max(sources[0]!.level + 1, levelOfSize(rows, runRows, fanIn)),
      firstAuditId: Math.min(...sources.map((r) => r.firstAuditId)),
      lastAuditId: Math.max(...sources.map((r) => r.lastAuditId)),
      rows,
    };
    await listRun(trx, {
      run: target.run,
      level: target.level,
      first_audit_id: target.firstAuditId,
      last_audit_id: target.lastAuditId,
      row_count: target.rows,
      state: 'building',
      touched_at: isoNow(clock),
    });
    return { sources, target };
  });
  if (planned === null) return 0;
  const { sources, target } = planned;
  const ids = sources.map((r) => r.run);
  const largest = sources.reduce((a, b) => (b.rows > a.rows ? b : a));
  // Each source adds at most as many rows to a range as the largest does.
  const step = Math.max(1, Math.floor(chunkRows / sources.length));
  let lower: string | null = null;
  try {
    for (;;) {
      options.signal?.throwIfAborted();
      await options.beforeMergeStep?.('copy');
      const upper = await findBoundary(knex, largest.run, lower, step);
      await writeStep(knex, options, async (trx) => {
        await copySortedRows(trx, target.run, WHO_READ_TABLE, runsBetween(ids, lower, upper));
        await touchRun(trx, target.run, isoNow(clock));
      });
      if (upper === null) break;
      lower = upper;
    }
  } catch (err) {
    // Stopped on purpose: the rows copied so far are dropped by the next pass, not ten minutes later.
    if (options.signal?.aborted === true) await unlistRuns(knex, [target.run]);
    throw err;
  }
  await options.beforeMergeStep?.('switch');
  const switched = await writeStep(knex, options, async (trx) => {
    await lockRuns(trx);
    const stillLive = await selectStillLive(trx, ids);
    const building = await selectBuilding(trx, target.run);
    if (stillLive.length !== ids.length || building.length !== 1) {
      await unlistRuns(trx, [target.run]);
      return false;
    }
    await unlistRuns(trx, ids);
    await makeRunLive(trx, target.run, isoNow(clock));
    return true;
  });
  return switched ? ids.length : 0;
}

/** The national ID `step` rows after `lower` in a run (inclusive bound of the next range), or null past its end. */
async function findBoundary(
  knex: Knex,
  run: number,
  lower: string | null,
  step: number,
): Promise<string | null> {
  return (await selectBoundary(knex, run, lower, step))?.national_id ?? null;
}

/**
 * Deletes the rows of runs that are listed nowhere (merged away, or a merge given up), a range
 * of IDs per transaction; a merge left unfinished for ten minutes is given up first.
 */
async function dropDeadRuns(knex: Knex, options: WhoReadIndexOptions): Promise<number> {
  const chunkRows = options.chunkRows ?? DEFAULT_CHUNK_ROWS;
  const clock = options.clock ?? systemClock;
  const abandoned = new Date(clock.now().getTime() - ABANDONED_MERGE_MS).toISOString();
  if ((await selectAbandonedMerge(knex, abandoned)) !== undefined)
    await writeStep(knex, options, async (trx) => {
      await lockRuns(trx);
      await unlistAbandonedMerges(trx, abandoned);
    });
  // A run merged away after this read is dropped by the next pass; one listed after it is asked about under the lock.
  const listed = new Set((await selectListedRuns(knex)).map(Number));
  let dropped = 0;
  // The runs stored, found by seeking past each one rather than reading its rows.
  for (let run = await nextStoredRun(knex, 0); run !== null; run = await nextStoredRun(knex, run)) {
    // A live run's boundary read and locked check cost 20,000 rows and a write lock, each pass.
    if (listed.has(run)) continue;
    for (;;) {
      options.signal?.throwIfAborted();
      const upper = await findBoundary(knex, run, null, chunkRows);
      // Whether the run is listed is asked under the lock: another process may have just made it.
      const deleted = await writeStep(knex, options, async (trx) => {
        await lockRuns(trx);
        if ((await selectListing(trx, run)) !== undefined) return null;
        return deleteRunRows(trx, run, upper);
      });
      if (deleted === null) break;
      await options.beforeMergeStep?.('drop');
      dropped += deleted;
      if (upper === null) break;
    }
  }
  return dropped;
}

async function nextStoredRun(knex: Knex, after: number): Promise<number | null> {
  return readAggregate(await selectNextStoredRun(knex, after));
}

/**
 * Whether the index says what the log says: the live runs cover every event up to the last one
 * indexed, once each, and each holds exactly its events' subject rows. The index is not part of
 * the hash chain (merges delete rows), so this is how an edited index is caught. One sentence
 * per problem; none when it holds.
 */
export async function verifyWhoReadIndex(knex: Knex): Promise<string[]> {
  const problems: string[] = [];
  const runs = (await selectLiveRunsInLogOrder(knex)).map(toRun);
  let expectedFirst = 1;
  for (const run of runs) {
    if (run.firstAuditId !== expectedFirst)
      problems.push(
        `who-read index: run ${run.run} starts at event ${run.firstAuditId}, expected ${expectedFirst}`,
      );
    expectedFirst = run.lastAuditId + 1;
    const [stored] = await countRunRows(knex, run.run);
    const [logged] = await countLoggedRows(knex, run.firstAuditId, run.lastAuditId);
    const [missing] = await countRowsMissingFromRun(knex, run.run, run.firstAuditId, run.lastAuditId);
    const missingRows = Number(missing?.n ?? 0);
    const extraRows = Number(stored?.n ?? 0) - (Number(logged?.n ?? 0) - missingRows);
    if (missingRows > 0)
      problems.push(`who-read index: run ${run.run} lacks ${missingRows} subject rows of its events`);
    if (extraRows > 0)
      problems.push(`who-read index: run ${run.run} holds ${extraRows} rows that are not in the log`);
  }
  return problems;
}
