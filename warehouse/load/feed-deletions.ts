import type { WarehouseRow, WarehouseValue } from '../core/warehouse-value.ts';
import type { LoadBatch } from './load-types.ts';

/**
 * A record key as text, the same for a row's key columns and a deletion's key whatever the
 * value types (5 and '5' are one key, as the database's comparison makes them).
 */
export function buildKeyText(key: readonly WarehouseValue[]): string {
  return JSON.stringify(key.map((v) => (typeof v === 'string' || v === null ? v : String(v))));
}

interface DeletedRecord {
  /** The key as the last deletion sent it. */
  key: WarehouseRow;
  /** Whether a version of the record came after its last deletion. */
  sentAgain: boolean;
}

/**
 * The deletions of an incremental run's feed, followed while the feed's rows are written in one
 * stream (into an empty table, every version kept in feed order). Applied batch by batch, a
 * deletion removes the versions before it and a version after it registers the record again; so
 * the records to remove once the stream ends are those whose last event is a deletion. Within a
 * batch the rows count as before the deletions, the order a batch is applied in. Only deleted
 * records are kept in memory, at most `limit` of them.
 */
export class FeedDeletions {
  private readonly records = new Map<string, DeletedRecord>();

  constructor(
    private readonly keyIndexes: number[],
    private readonly limit: number,
  ) {}

  /** More distinct records deleted than the limit allows: the feed is to be applied batch by batch. */
  get overLimit(): boolean {
    return this.records.size > this.limit;
  }

  note(batch: Pick<LoadBatch, 'rows' | 'deletes'>): void {
    if (this.records.size > 0) {
      for (const row of batch.rows) {
        const record = this.records.get(buildKeyText(this.keyIndexes.map((i) => row[i] ?? null)));
        if (record !== undefined) record.sentAgain = true;
      }
    }
    this.noteDeletions(batch.deletes);
  }

  /**
   * A batch's deletions alone, for a feed read out of order: what comes after a deletion cannot
   * be told there, so its rows are not looked at (allDeleted).
   */
  noteDeletions(deletes: readonly WarehouseRow[]): void {
    for (const key of deletes) this.records.set(buildKeyText(key), { key, sentAgain: false });
  }

  /** Keys of every record the feed deleted, whatever came after: for a feed read out of order. */
  allDeleted(): WarehouseRow[] {
    return [...this.records.values()].map((record) => record.key);
  }

  /** Keys of the records the feed ends with deleted, as their last deletion sent them. */
  deletedAtEnd(): WarehouseRow[] {
    const keys: WarehouseRow[] = [];
    for (const record of this.records.values()) if (!record.sentAgain) keys.push(record.key);
    return keys;
  }
}
