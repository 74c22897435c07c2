import type { LoadBatch } from '../warehouse/load/load-types.ts';
import type { WarehouseRow } from '../warehouse/core/warehouse-value.ts';
import { maxCursor } from './compare-cursor.ts';
import type { RowMapper } from './mapping/compile-row-mapper.ts';

/** Records and the mapper that reads them: arrays from a source that hands out chunks, objects otherwise. */
export interface MappedChunk<R> {
  mapper: RowMapper<R>;
  records: R[];
  /** The record as a reject keeps it. */
  describe(record: R): unknown;
}

/**
 * Adds one source record to the batch: a mapped row, a reject, or (incremental runs) a deletion,
 * whose key it returns. A full load leaves deleted records out. The cursor moves past every record.
 */
export function addRecord<R>(
  batch: LoadBatch,
  chunk: MappedChunk<R>,
  record: R,
  incremental: boolean,
  cursors: { records: string | null },
): WarehouseRow | null {
  const mapper = chunk.mapper;
  cursors.records = maxCursor(cursors.records, mapper.cursorOf(record));
  if (mapper.isDeletion(record)) {
    // A full load simply leaves deleted records out; an incremental one removes them.
    if (!incremental) return null;
    const key = mapper.mapKey(record);
    if (key === null)
      batch.rejects.push({
        sourceKey: mapper.sourceKey(record),
        reason: 'deleted record has no valid key',
        raw: chunk.describe(record),
      });
    else batch.deletes.push(key);
    return key;
  }
  const mapped = mapper.map(record);
  if (mapped.ok) batch.rows.push(mapped.values);
  else
    batch.rejects.push({
      sourceKey: mapper.sourceKey(record),
      reason: mapped.reason,
      raw: chunk.describe(record),
    });
  return null;
}

export function newBatch(): LoadBatch {
  return { read: 0, rows: [], rejects: [], deletes: [] };
}
