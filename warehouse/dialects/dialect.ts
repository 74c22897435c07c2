import type { Knex } from 'knex';
import type { WarehouseRow } from '../core/warehouse-value.ts';
import type { DialectName } from '../db.ts';
import type { RejectRow } from '../load/save-rejects.ts';

/**
 * Writes a table's rows as fast as the database allows, with the rejects of the same batches
 * (hub_rejects rows). A write may return before its rows are stored; close() returns once all
 * are, and throws the first failure.
 */
export interface BulkWriter {
  write(rows: WarehouseRow[], rejects?: RejectRow[]): Promise<void>;
  /** Rows already in COPY text, one per line in the target's column order (dialects that take it). */
  writeCopyText?(bytes: Buffer, rejects?: RejectRow[]): Promise<void>;
  /**
   * Appends the rows of a stage file (warehouse/load/stage-file.ts) in their order, and its
   * rejects as the run's (dialects that take one).
   */
  appendStaged?(stageFile: string, run: { id: number; connector: string }): Promise<void>;
  close(): Promise<void>;
  /** Gives up the load: no row stays, the rejects of every batch already written to it do. */
  abort(): Promise<void>;
}

/** HUB_LOAD_THREADS: 1 keeps a load on one thread, 2 takes a second wherever it can, auto where it pays. */
export type LoadThreads = 'auto' | 1 | 2;

export interface BulkTarget {
  table: string;
  columns: string[];
  key: string[];
  /** Positions (in `columns`) of boolean columns, for drivers that bind them as numbers. */
  booleanColumns?: number[];
}

/**
 * What differs between databases, kept in one small module each (as knex keeps its
 * dialects apart); the load logic above it is the same for all of them.
 */
export interface Dialect {
  name: DialectName;
  /** Bound values one statement may carry. */
  maxBindings: number;
  /** Rows one multi-row INSERT may carry, whatever the bindings (SQLite compiles them to a compound SELECT of at most 500 terms). */
  maxInsertRows: number;
  /** `threads`: HUB_LOAD_THREADS as the run reads it; a dialect that can write on a thread of its own follows it. */
  /** `inThisThread`: the writer must write on the calling thread (it is handed a stage file to append). */
  openBulkWriter(
    knex: Knex,
    target: BulkTarget,
    threads?: LoadThreads,
    options?: { inThisThread?: boolean },
  ): Promise<BulkWriter>;
  /** Whether its bulk writer takes rows already encoded as COPY text (`BulkWriter.writeCopyText`). */
  takesCopyText?: boolean;
  /**
   * Where a second thread may write a full load's rows for the bulk writer to append
   * (`BulkWriter.appendStaged`), beside the warehouse; null where no other thread can reach it.
   * Dialects without it take no stage file.
   */
  stageFileFor?(knex: Knex, name: string): string | null;
  /** Removes rows whose record key repeats (keeping the first written) and returns them. */
  removeDuplicateKeys(knex: Knex, target: BulkTarget): Promise<WarehouseRow[]>;
  isUniqueViolation(error: unknown): boolean;
  /**
   * Deletes all but the last written version of each record key from a table just written by
   * one bulk writer (no index yet), and returns how many rows it removed. Only dialects that can
   * tell the order rows were written in have it; the others apply incremental runs batch by batch.
   */
  keepLastVersions?: (knex: Knex, target: BulkTarget) => Promise<number>;
  /**
   * How long the audit writer lets events gather before a flush, beyond the end of the current
   * turn of the event loop (0: no longer). Every answer waits for its flush, so this is latency
   * added to every API request.
   */
  auditGatherMs: number;
  /** Holds an exclusive lock on a named resource until the transaction ends. */
  lockUntilCommit(trx: Knex.Transaction, resource: string): Promise<void>;
  /**
   * Runs a full load (its writes, index builds and swap) with the connection settings that suit
   * it, and restores the usual ones after, whatever happens. Dialects without such settings have none.
   * `threads` is the load's HUB_LOAD_THREADS: whether its index builds may sort on more than one core.
   */
  withFullLoadSettings?: <T>(knex: Knex, work: () => Promise<T>, threads?: LoadThreads) => Promise<T>;
  /** Refreshes the planner's statistics of a freshly loaded table, before it is joined against. */
  analyzeTable(knex: Knex, table: string): Promise<void>;
  /**
   * How the person key records which registry tables hold each national ID: a table the loads
   * keep up to date, or a view over the registry tables' national-ID indexes
   * (warehouse/person-tables-view.ts).
   */
  personTables: 'table' | 'view';
  /**
   * Renames an index in a transaction. Where a dialect has it, a full load builds the declared
   * indexes on its next table under names of their own and renames them in the swap
   * (warehouse/declared-indexes.ts); without it they are built after the swap.
   */
  renameIndex?: (trx: Knex.Transaction, from: string, to: string) => Promise<void>;
  /**
   * Fills a table by `fill` with its primary key dropped, then builds the key again by one sort:
   * for a large insert into an empty table, in place of an insertion into the key per row. The
   * table is locked exclusively first; then `stillWanted`, asked of the table as no other writer
   * can change it any more, may say no, and nothing is changed and the lock released. A table it
   * fills stays locked to the end of the transaction. Returns whether it filled the table (not
   * when it has no primary key). Dialects without it insert into the key as it is.
   */
  fillWithoutPrimaryKey?: (
    trx: Knex.Transaction,
    table: string,
    stillWanted: () => Promise<boolean>,
    fill: () => Promise<void>,
  ) => Promise<boolean>;
  /**
   * Adds to hub_persons, first seen at `seenAt`, those of `ids` (distinct) it does not hold yet.
   * Two transactions adding the same new person at once (incremental loads of two registries)
   * must both commit: the later one waits for the earlier and then skips that person, where a
   * read of the key followed by an insert fails on the key once the earlier commits.
   */
  insertMissingPersons(trx: Knex.Transaction, ids: string[], seenAt: string): Promise<void>;
  /** Insert-or-update by record key. Rows must have distinct keys. */
  buildUpsert(
    executor: Knex | Knex.Transaction,
    target: BulkTarget,
    rows: WarehouseRow[],
  ): Knex.QueryBuilder | Knex.Raw;
}

/** Runs `work` with the dialect's full-load settings, or as it is where the dialect has none. */
export function withFullLoadSettings<T>(
  dialect: Dialect,
  knex: Knex,
  work: () => Promise<T>,
  threads: LoadThreads = 'auto',
): Promise<T> {
  return dialect.withFullLoadSettings === undefined
    ? work()
    : dialect.withFullLoadSettings(knex, work, threads);
}

export function rowsPerStatement(
  dialect: Pick<Dialect, 'maxBindings'> & Partial<Pick<Dialect, 'maxInsertRows'>>,
  columns: number,
): number {
  const byBindings = Math.max(1, Math.floor(dialect.maxBindings / Math.max(1, columns)));
  return Math.min(byBindings, dialect.maxInsertRows ?? byBindings);
}

export function toRecord(columns: string[], row: WarehouseRow): Record<string, WarehouseRow[number]> {
  const record: Record<string, WarehouseRow[number]> = {};
  for (let i = 0; i < columns.length; i++) record[columns[i]!] = row[i] ?? null;
  return record;
}

/** Shared by dialects without a faster path: multi-row INSERT statements sized to the binding limit. */
export async function insertInChunks(
  executor: Knex | Knex.Transaction,
  dialect: Pick<Dialect, 'maxBindings' | 'maxInsertRows'>,
  target: BulkTarget,
  rows: WarehouseRow[],
): Promise<void> {
  const size = rowsPerStatement(dialect, target.columns.length);
  for (let i = 0; i < rows.length; i += size) {
    await executor(target.table).insert(rows.slice(i, i + size).map((r) => toRecord(target.columns, r)));
  }
}
