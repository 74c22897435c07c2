import type { Knex } from 'knex';
import type { Clock } from '../core/clock.ts';
import type { WarehouseRow } from '../core/warehouse-value.ts';
import type { Dialect, LoadThreads } from '../dialects/index.ts';
import type { RegistryTableSpec } from '../registry-tables.ts';

export interface LoadContext {
  knex: Knex;
  dialect: Dialect;
  clock: Clock;
  /** HUB_LOAD_THREADS as read for this run (default auto). */
  threads?: LoadThreads;
  /** The batches bring a stage file to append: the bulk writer writes on this thread, whose connection can attach it. */
  writeInThisThread?: boolean;
}

export interface RejectInput {
  sourceKey: string;
  reason: string;
  raw: unknown;
}

/** What a connector hands the warehouse, one batch at a time. */
export interface LoadBatch {
  /** Source records this batch came from (rows + rejects + deletions). */
  read: number;
  /** Mapped and valid rows, in the order of the spec's columns. */
  rows: WarehouseRow[];
  rejects: RejectInput[];
  /** Record keys (target key columns, in key order) of records deleted at the source. */
  deletes: WarehouseRow[];
  /**
   * A full load's rows already encoded as COPY text (connectors/parallel-read), in place of
   * `rows`, for a dialect whose bulk writer takes it (`Dialect.takesCopyText`).
   */
  copyText?: { bytes: Buffer; rows: number };
  /**
   * A stage file that a second thread wrote (connectors/parallel-read/load-with-stage-thread.ts),
   * holding this many rows and rejects, which the bulk writer appends after every row before them
   * (`BulkWriter.appendStaged`).
   */
  staged?: StagedLoad;
  /**
   * Progress only: what a second thread has written into its stage so far (read records, rows,
   * rejects), not yet in the counts, which take it with `staged`. Reported so that a run's page
   * follows both threads, not only this one.
   */
  stagedSoFar?: StagedCounts;
}

/** A load's batches, and whether this thread's writer must take them (a stage file to append). */
export interface LoadFeed {
  batches: AsyncIterable<LoadBatch>;
  writeInThisThread: boolean;
}

export interface StagedCounts {
  read: number;
  rows: number;
  rejects: number;
}

export interface StagedLoad {
  file: string;
  rows: number;
  rejects: number;
}

export interface LoadStats {
  read: number;
  inserted: number;
  updated: number;
  deleted: number;
  rejected: number;
}

/**
 * Where a load stands, for progress reports: a full load reads and writes the next table batch by
 * batch (loading), then indexes it and swaps it in (so does an incremental run into an empty
 * table); an incremental load reads the source into its spool (reading), then applies the changes
 * in one transaction (applying).
 */
export const LOAD_PHASES = ['loading', 'indexing', 'swapping', 'reading', 'applying'] as const;
export type LoadPhase = (typeof LOAD_PHASES)[number];

export interface LoadRun {
  id: number;
  connector: string;
  spec: RegistryTableSpec;
  /** Runs inside the load's final transaction: what must commit with the data (run record, watermark). */
  commit(trx: Knex.Transaction, stats: LoadStats): Promise<void>;
  /** Called with the running counts (the same object, updated in place) each time they move, and at each phase. */
  onProgress?: ((stats: LoadStats, phase: LoadPhase) => void) | undefined;
}

export const emptyStats = (): LoadStats => ({ read: 0, inserted: 0, updated: 0, deleted: 0, rejected: 0 });
