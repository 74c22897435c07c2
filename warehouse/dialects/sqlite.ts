import type Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import os from 'node:os';
import type { Knex } from 'knex';
import type { WarehouseRow, WarehouseValue } from '../core/warehouse-value.ts';
import { SQLITE_FULL_LOAD_CACHE_KIB } from '../db.ts';
import { withRawConnection } from './raw-connection.ts';
import { toRecord, type BulkTarget, type BulkWriter, type Dialect, type LoadThreads } from './dialect.ts';
import { REJECT_COLUMNS, type RejectRow } from '../load/save-rejects.ts';
import { STAGE_REJECTS, STAGE_TABLE, STAGED_REJECT_COLUMNS, stageColumn } from '../load/stage-file.ts';
import { openSqliteWorkerWriter } from './sqlite-bulk-writer.ts';
import { hasIdleCore } from './idle-cores.ts';
import { startBackgroundCheckpoints, type BackgroundCheckpointer } from './sqlite-checkpointer.ts';

/** SQLite's own default: checkpoint once the WAL holds this many pages. */
const DEFAULT_WAL_AUTOCHECKPOINT = 1000;

/**
 * A WAL smaller than this is copied into the database file in a few tens of milliseconds by the
 * load's final checkpoint: no thread is started for it.
 */
const BACKGROUND_CHECKPOINT_FROM_BYTES = 32 << 20;

/** The full loads running on each warehouse connection pool, with their checkpoint thread once it is started. */
const fullLoads = new WeakMap<Knex, { checkpointer: BackgroundCheckpointer | null }>();

const walBytes = (filename: string) => {
  try {
    return statSync(`${filename}-wal`).size;
  } catch {
    return 0;
  }
};

/** The file a SQLite warehouse's connections open, or null for an in-memory one (no other thread can open it). */
export function sqliteFilename(knex: Knex): string | null {
  const connection = (knex.client as { config: { connection?: { filename?: unknown } } }).config.connection;
  const filename = connection?.filename;
  return typeof filename === 'string' && filename !== '' && filename !== ':memory:' ? filename : null;
}

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/** better-sqlite3 binds numbers, strings and null only. */
function bindable(row: WarehouseRow): Array<string | number | null> {
  const out = new Array<string | number | null>(row.length);
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    out[i] = typeof v === 'boolean' ? (v ? 1 : 0) : (v ?? null);
  }
  return out;
}

const insertSql = (target: BulkTarget) =>
  `INSERT INTO ${quote(target.table)} (${target.columns.map(quote).join(', ')}) VALUES (${target.columns
    .map(() => '?')
    .join(', ')})`;

/**
 * The same prepared-statement path on the hub's own connection, one transaction per batch. The
 * batches commit one by one so that other writes get their turn, but no commit checkpoints the
 * WAL into the database file (with its fsyncs) until the load is written: the first commit
 * after it does that once, as a load in a single transaction would.
 */
function openInProcessWriter(knex: Knex, target: BulkTarget): BulkWriter {
  const rejectSql = `INSERT INTO hub_rejects (${REJECT_COLUMNS.map(quote).join(', ')}) VALUES (${REJECT_COLUMNS.map(() => '?').join(', ')})`;
  // A row with no boolean column binds as it is: a converted copy of every row is garbage the
  // collector then has to clear.
  const bind = target.booleanColumns?.length === 0 ? (row: WarehouseRow) => row : bindable;
  const writeBatch = (db: Database.Database, rows: WarehouseRow[], rejects: RejectRow[]) => {
    db.pragma('wal_autocheckpoint = 0');
    const statement = db.prepare(insertSql(target));
    const rejectStatement = db.prepare(rejectSql);
    db.transaction(() => {
      for (const row of rows) statement.run(bind(row));
      for (const reject of rejects) rejectStatement.run(reject);
    })();
  };
  // Within full-load settings the load's end restores them, after its indexes and person key.
  const restoreCheckpoints = async () => {
    if (fullLoads.has(knex)) return;
    await withRawConnection(
      knex,
      (db: Database.Database) => void db.pragma(`wal_autocheckpoint = ${DEFAULT_WAL_AUTOCHECKPOINT}`),
    );
  };
  return {
    write: (rows, rejects = []) =>
      withRawConnection(knex, (db: Database.Database) => writeBatch(db, rows, rejects)),
    appendStaged: (stageFile, run) => appendStaged(knex, target, stageFile, run),
    close: restoreCheckpoints,
    abort: restoreCheckpoints,
  };
}

/** Rowids of a stage file appended per statement (about 10 ms of work): API requests get their turn between them, as between batches. */
const APPEND_ROWIDS = 10_000;

/** Appends a stage file's rows to the target and its rejects to the run's, in rowid order, attached to the writer's connection. */
async function appendStaged(
  knex: Knex,
  target: BulkTarget,
  stageFile: string,
  run: { id: number; connector: string },
): Promise<void> {
  const columns = target.columns.map(quote).join(', ');
  const staged = target.columns.map((_, i) => stageColumn(i)).join(', ');
  await withRawConnection(knex, (db: Database.Database) =>
    db.prepare('ATTACH DATABASE ? AS hub_stage').run(stageFile),
  );
  try {
    const last = await withRawConnection(knex, (db: Database.Database) =>
      Number(db.prepare(`SELECT max(rowid) FROM hub_stage.${STAGE_TABLE}`).pluck().get() ?? -1),
    );
    for (let from = 0; from <= last; from += APPEND_ROWIDS) {
      await withRawConnection(knex, (db: Database.Database) => {
        db.pragma('wal_autocheckpoint = 0');
        db.prepare(
          `INSERT INTO ${quote(target.table)} (${columns}) SELECT ${staged} FROM hub_stage.${STAGE_TABLE} WHERE rowid BETWEEN ? AND ? ORDER BY rowid`,
        ).run(from, from + APPEND_ROWIDS - 1);
      });
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const rejectColumns = STAGED_REJECT_COLUMNS.map(quote).join(', ');
    await withRawConnection(knex, (db: Database.Database) => {
      db.prepare(
        `INSERT INTO hub_rejects (connector, run_id, ${rejectColumns}) SELECT ?, ?, ${rejectColumns} FROM hub_stage.${STAGE_REJECTS} ORDER BY rowid`,
      ).run(run.connector, run.id);
    });
  } finally {
    await withRawConnection(
      knex,
      (db: Database.Database) => void db.prepare('DETACH DATABASE hub_stage').run(),
    );
  }
}

/**
 * The rows written on a thread of their own (sqlite-bulk-writer.ts). Within full-load settings,
 * once they are written, a second thread starts copying their frames into the database file
 * while the main thread builds the indexes: a core was idle for the writer, and it is again.
 */
async function openWorkerWriter(knex: Knex, filename: string, target: BulkTarget): Promise<BulkWriter> {
  return checkpointingAfter(knex, filename, await openSqliteWorkerWriter(filename, target));
}

/** The writer, whose close starts the background checkpoints of a large full load (see openWorkerWriter). */
function checkpointingAfter(knex: Knex, filename: string, writer: BulkWriter): BulkWriter {
  const load = fullLoads.get(knex);
  if (load === undefined) return writer;
  return {
    ...writer,
    async close() {
      await writer.close();
      if (load.checkpointer !== null || walBytes(filename) < BACKGROUND_CHECKPOINT_FROM_BYTES) return;
      // Without the thread the load's final checkpoint copies every frame, as it does for small loads.
      load.checkpointer = await startBackgroundCheckpoints(filename).catch(() => null);
    },
  };
}

/**
 * SQLite's `threads`: how many helper threads its sorter may start to sort the pieces of an index
 * build (CREATE INDEX, the person key's DISTINCT) at once, while the connection's own thread
 * merges. Measured on two cores at 1,000,000 persons, the declared three-column index took
 * 1.76–2.05 s with none, 1.55–1.60 s with one and 1.35–1.55 s with two: so one per core.
 * HUB_LOAD_THREADS=1 keeps the sort on the one thread, 2 takes a helper even on one core.
 */
export function sortHelperThreads(threads: LoadThreads, cores = os.availableParallelism()): number {
  if (threads === 1) return 0;
  if (threads === 2) return Math.max(cores, 1);
  return cores < 2 ? 0 : cores;
}

export const sqliteDialect: Dialect = {
  name: 'sqlite',
  maxBindings: 32766,
  maxInsertRows: 500,
  // A group is one synchronous write on the writer's connection (record-audit.ts): cheap enough per turn.
  auditGatherMs: 0,

  openBulkWriter(knex: Knex, target: BulkTarget, threads: LoadThreads = 'auto', options = {}) {
    // An in-memory database belongs to its one connection: no other thread can write it.
    const filename = sqliteFilename(knex);
    // A load on two threads that each write (connectors/parallel-read/load-with-stage-thread.ts):
    // this thread's connection appends the stage, and both cores were busy, as with a writer thread.
    if (options.inThisThread === true)
      return Promise.resolve(
        filename === null
          ? openInProcessWriter(knex, target)
          : checkpointingAfter(knex, filename, openInProcessWriter(knex, target)),
      );
    // Handing batches to a writer thread costs CPU of its own (each is encoded and parsed again):
    // it shortens a load when a core would otherwise stay idle, and lengthens it on a machine
    // whose cores are all busy.
    if (filename !== null && threads !== 1 && (threads === 2 || hasIdleCore()))
      return openWorkerWriter(knex, filename, target);
    return Promise.resolve(openInProcessWriter(knex, target));
  },

  stageFileFor(knex, name) {
    const filename = sqliteFilename(knex);
    return filename === null ? null : `${filename}.${name}.stage`;
  },

  async removeDuplicateKeys(knex, target) {
    const key = target.key.map(quote).join(', ');
    const removed = await knex.raw<Array<Record<string, WarehouseValue>>>(
      `DELETE FROM ${quote(target.table)} WHERE rowid NOT IN (SELECT min(rowid) FROM ${quote(target.table)} GROUP BY ${key}) RETURNING *`,
    );
    return removed.map((r) => target.columns.map((c) => r[c] ?? null));
  },

  // Without deletions in between, SQLite numbers a table's rows in the order they are inserted.
  async keepLastVersions(knex, target) {
    const key = target.key.map(quote).join(', ');
    const table = quote(target.table);
    const result = await knex.raw<{ changes: number }>(
      `DELETE FROM ${table} WHERE rowid NOT IN (SELECT max(rowid) FROM ${table} GROUP BY ${key})`,
    );
    return result.changes;
  },

  buildUpsert(executor, target, rows) {
    const updates = target.columns.filter((c) => !target.key.includes(c));
    const insert = executor(target.table).insert(rows.map((r) => toRecord(target.columns, bindable(r))));
    return updates.length === 0
      ? insert.onConflict(target.key).ignore()
      : insert.onConflict(target.key).merge(updates);
  },

  /**
   * A smaller page cache (SQLITE_FULL_LOAD_CACHE_KIB), and no checkpoint at each commit: the
   * load's frames are copied into the database file by a thread of its own while the load goes
   * on (when the rows were written on one, see openWorkerWriter), and what is left by one passive
   * checkpoint at the end, as a load in a single transaction would have it. The index builds
   * sort with helper threads (sortHelperThreads).
   */
  async withFullLoadSettings(knex, work, threads = 'auto') {
    if (fullLoads.has(knex)) return work();
    const usual = await withRawConnection(knex, (db: Database.Database) => {
      const current = {
        cache: Number(db.pragma('cache_size', { simple: true })),
        threads: Number(db.pragma('threads', { simple: true })),
      };
      db.pragma(`cache_size = -${SQLITE_FULL_LOAD_CACHE_KIB}`);
      db.pragma('wal_autocheckpoint = 0');
      db.pragma(`threads = ${sortHelperThreads(threads)}`);
      return current;
    });
    const load = { checkpointer: null as BackgroundCheckpointer | null };
    fullLoads.set(knex, load);
    try {
      return await work();
    } finally {
      fullLoads.delete(knex);
      await load.checkpointer?.stop();
      await withRawConnection(knex, (db: Database.Database) => {
        db.pragma(`cache_size = ${usual.cache}`);
        db.pragma(`threads = ${usual.threads}`);
        db.pragma(`wal_autocheckpoint = ${DEFAULT_WAL_AUTOCHECKPOINT}`);
        // Left undone (say, the file is busy), the next commit's autocheckpoint does it.
        try {
          db.pragma('wal_checkpoint(PASSIVE)');
        } catch {
          // ignored: see above
        }
      });
    }
  },

  // A SQLite write transaction already excludes every other writer.
  lockUntilCommit: () => Promise.resolve(),

  personTables: 'view',
  // One writer at a time: INSERT OR IGNORE only has to skip the persons already there.
  insertMissingPersons: async (trx, ids, seenAt) =>
    void (await trx.raw(
      'INSERT OR IGNORE INTO hub_persons (national_id, first_seen_at) SELECT value, ? FROM json_each(?)',
      [seenAt, JSON.stringify(ids)],
    )),
  // SQLite plans these joins from the indexes alone.
  analyzeTable: () => Promise.resolve(),

  isUniqueViolation: (error) =>
    ['SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY'].includes(
      String((error as { code?: unknown }).code),
    ),
};
