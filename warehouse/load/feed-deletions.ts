import type { WarehouseRow, WarehouseValue } from '../core/warehouse-value.ts';
import type { LoadBatch } from './load-types.ts';

/**
 * A record key as text, the same for a row's key columns and a deletion's key whatever the
 * value types (5 and '5' are one key, as the database's comparison makes them).
 */
export function buildKeyText(key: readonly WarehouseValue[]): string {
  return JSON.stringify(key.map((v) => (typeof v === 'string' || v === null ? v : String(v))));
}

/** Drops, from rows written in feed order, the versions of records deleted later in the feed. */
export interface DeletionFilter {
  keep(rows: WarehouseRow[]): WarehouseRow[];
  /** Records whose last version came before their last deletion: what batch-by-batch application removes. */
  deletedRecords(): number;
}

/**
 * The deletions of an incremental run's feed, noted while the feed is spooled, so that a run
 * writing all its rows in one stream (into an empty table) can leave out every row a later
 * deletion removes, with the same end state as applying the feed batch by batch. Within a
 * batch the rows count as before the deletions, since that is the order a batch is applied in.
 * Past `limit` deletions the keys are no longer kept: such a run applies batch by batch.
 */
export class FeedDeletions {
  /** Deletions in the feed, all of them, also past the limit. */
  count = 0;
  private rowsNoted = 0;
  /** Per deleted record key, how many rows of the feed come before its last deletion. */
  private readonly rowsBeforeLast = new Map<string, number>();

  constructor(private readonly limit: number) {}

  get withinLimit(): boolean {
    return this.count <= this.limit;
  }

  note(batch: LoadBatch): void {
    this.rowsNoted += batch.rows.length;
    this.count += batch.deletes.length;
    if (!this.withinLimit) {
      this.rowsBeforeLast.clear();
      return;
    }
    for (const key of batch.deletes) this.rowsBeforeLast.set(buildKeyText(key), this.rowsNoted);
  }

  /** A filter for the feed's rows read again from the start, in the same order. */
  openFilter(keyIndexes: number[]): DeletionFilter {
    const rowsBeforeLast = this.rowsBeforeLast;
    const dropped = new Set<string>();
    const survived = new Set<string>();
    let position = 0;
    return {
      keep(rows) {
        if (rowsBeforeLast.size === 0) {
          position += rows.length;
          return rows;
        }
        const kept: WarehouseRow[] = [];
        for (const row of rows) {
          const key = buildKeyText(keyIndexes.map((i) => row[i] ?? null));
          const before = rowsBeforeLast.get(key);
          if (before === undefined) kept.push(row);
          else if (position < before) dropped.add(key);
          else {
            kept.push(row);
            survived.add(key);
          }
          position++;
        }
        return kept.length === rows.length ? rows : kept;
      },
      deletedRecords() {
        let n = 0;
        for (const key of dropped) if (!survived.has(key)) n++;
        return n;
      },
    };
  }
}
