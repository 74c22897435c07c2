import Database from 'better-sqlite3';
import type { ConnectorDefinition } from '../definition.ts';
import type { NationalIdRule } from '../../warehouse/core/national-id.ts';
import { encodeCopyRows } from '../../warehouse/dialects/copy-text.ts';
import type { RejectInput } from '../../warehouse/load/load-types.ts';
import type { WarehouseRow } from '../../warehouse/core/warehouse-value.ts';
import { maxCursor } from '../compare-cursor.ts';
import { addRecord, newBatch } from '../map-records.ts';
import { compileArrayRowMapper, type RowMapper } from '../mapping/compile-row-mapper.ts';
import type { SqliteTableLocation } from '../sources/source.ts';

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/** Names by which SQLite means a rowid table's rowid, unless a column has taken one. */
const ROWID_NAMES = ['rowid', '_rowid_', 'oid'];

/** Rowids spread wider than this many times the row count are not read in ranges. */
const SPARSEST = 4;

/** A table read in ranges of `width` rowids, from `first` to `last`. */
export interface RangePlan {
  first: number;
  last: number;
  width: number;
}

export const rangeCount = (plan: RangePlan) => Math.floor((plan.last - plan.first) / plan.width) + 1;

/** Takes the next range no thread has claimed from a counter both threads share; null when none is left. */
export function claimRange(claims: Int32Array, total: number): number | null {
  const k = Atomics.add(claims, 0, 1);
  return k < total ? k : null;
}

/** One range of source records, mapped. */
export interface MappedRange {
  rows: WarehouseRow[];
  read: number;
  rejects: RejectInput[];
  /** Keys of the deleted records, when they are read as an incremental run reads them. */
  deletes: WarehouseRow[];
  cursor: string | null;
}

/** One range of source records, mapped and encoded as COPY text. */
export interface EncodedRange {
  copyText: Buffer;
  rows: number;
  read: number;
  rejects: RejectInput[];
  deletes: WarehouseRow[];
  cursor: string | null;
}

export interface RangeReadOptions {
  /**
   * Deleted records become deletions (and a deleted record without a valid key a reject), as an
   * incremental run maps them; a full load leaves them out.
   */
  incremental?: boolean;
}

/**
 * One connection to a SQLite source table that reads it range by range of rowids, inside one
 * read transaction (one state of the file, whatever is committed meanwhile), and maps and
 * encodes each range as the one-thread path maps a chunk. A table scanned without ORDER BY comes
 * in rowid order, so ranges taken in order give the records in the order a full load reads them.
 */
export class RowidRangeReader {
  private readonly db: Database.Database;
  private readonly select: Database.Statement<[number, number], unknown[]>;
  private readonly fields: string[];
  private readonly mapper: RowMapper<unknown[]>;
  /** Deleted records are read as deletions (RangeReadOptions). */
  readonly incremental: boolean;

  constructor(
    location: SqliteTableLocation,
    def: ConnectorDefinition,
    rule: NationalIdRule,
    options: RangeReadOptions = {},
  ) {
    this.incremental = options.incremental === true;
    this.db = new Database(location.filename, { readonly: true, fileMustExist: true });
    try {
      // As the one-thread source: a scan gains nothing from a large cache.
      this.db.pragma('cache_size = -2048');
      this.db.prepare('BEGIN').run();
      this.select = this.db
        .prepare<[number, number], unknown[]>(
          `SELECT * FROM ${quote(location.table)} WHERE rowid BETWEEN ? AND ?`,
        )
        .raw(true);
      this.fields = this.select.columns().map((c) => c.name);
      this.mapper = compileArrayRowMapper(def, rule, this.fields);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  /**
   * The ranges that cover the table, read in this connection's transaction (which it starts, so
   * the state read from then on is this one); null for a table SQLite cannot read by rowid.
   */
  plan(table: string, width: number): RangePlan | null {
    const master = this.db
      .prepare<[string], { type: string; sql: string | null }>(
        'SELECT type, sql FROM sqlite_master WHERE name = ? COLLATE NOCASE',
      )
      .get(table);
    if (master?.type !== 'table' || master.sql === null) return null;
    if (/^\s*CREATE\s+VIRTUAL\b/i.test(master.sql) || /\bWITHOUT\s+ROWID\b/i.test(master.sql)) return null;
    const columns = this.db.prepare(`PRAGMA table_info(${quote(table)})`).all() as Array<{ name: string }>;
    if (columns.some((c) => ROWID_NAMES.includes(c.name.toLowerCase()))) return null;
    const bounds = this.db
      .prepare<[], { first: number | null; last: number | null }>(
        `SELECT min(rowid) AS first, max(rowid) AS last FROM ${quote(table)}`,
      )
      .get();
    if (bounds?.first == null || bounds.last == null) return null;
    const { first, last } = bounds;
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last)) return null;
    const count = this.db
      .prepare(`SELECT count(*) AS n FROM ${quote(table)}`)
      .pluck()
      .get() as number;
    // Sparse rowids would make most ranges empty reads.
    if (last - first + 1 > SPARSEST * count) return null;
    return { first, last, width };
  }

  /** Range `k` of the plan: its records mapped as a full load maps them. */
  mapRange(plan: RangePlan, k: number): MappedRange {
    const from = plan.first + k * plan.width;
    const batch = newBatch();
    const cursors = { records: null as string | null };
    const fields = this.fields;
    const chunk = {
      mapper: this.mapper,
      records: [] as unknown[][],
      describe: (row: unknown[]) => Object.fromEntries(fields.map((f, i) => [f, row[i]])),
    };
    for (const record of this.select.all(from, from + plan.width - 1)) {
      batch.read++;
      addRecord(batch, chunk, record, this.incremental, cursors);
    }
    return {
      rows: batch.rows,
      read: batch.read,
      rejects: batch.rejects,
      deletes: batch.deletes,
      cursor: cursors.records,
    };
  }

  /** Range `k` of the plan, mapped, and its rows encoded as COPY text. */
  encodeRange(plan: RangePlan, k: number): EncodedRange {
    const { rows, ...range } = this.mapRange(plan, k);
    return { ...range, copyText: encodeCopyRows(rows), rows: rows.length };
  }

  /** The target's columns, in the order of a mapped range's rows. */
  get columns(): string[] {
    return this.mapper.columns;
  }

  close(): void {
    if (this.db.inTransaction) this.db.prepare('COMMIT').run();
    this.db.close();
  }
}

/** Folds one range's cursor into the run's. */
export const foldCursor = (cursors: { records: string | null }, range: { cursor: string | null }) =>
  (cursors.records = maxCursor(cursors.records, range.cursor));
