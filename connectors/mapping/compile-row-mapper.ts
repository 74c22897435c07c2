import type { ConnectorDefinition } from '../definition.ts';
import type { SourceRecord } from '../sources/source.ts';
import { explainInvalidNationalId, type NationalIdRule } from '../../warehouse/core/national-id.ts';
import { compileValueConverter } from './convert-value.ts';
import { cursorText } from '../compare-cursor.ts';
import { toSourceText } from '../../warehouse/core/source-text.ts';

import type { WarehouseValue } from '../../warehouse/core/warehouse-value.ts';
export type { WarehouseValue };

export type MappedRow = { ok: true; values: WarehouseValue[] } | { ok: false; reason: string };

export interface RowMapper {
  /** Target columns, in the order of `values`. */
  columns: string[];
  map(record: SourceRecord): MappedRow;
  /** Only the record key, converted like the row: enough to delete a record whose other fields are bad. */
  mapKey(record: SourceRecord): WarehouseValue[] | null;
  /** The record key as the source has it, for rejects and messages. */
  sourceKey(record: SourceRecord): string;
  /** Whether the record is a soft deletion. */
  isDeletion(record: SourceRecord): boolean;
  /** The record's cursor value as text (the next watermark candidate), or null. */
  cursorOf(record: SourceRecord): string | null;
}

/** Compiles a connector's column mappings into one function from a source record to a warehouse row. */
export function compileRowMapper(def: ConnectorDefinition, rule: NationalIdRule): RowMapper {
  const columns = Object.keys(def.columns);
  const fields = columns.map((c) => def.columns[c]!.from ?? c);
  const converters = columns.map((c) => compileValueConverter(c, def.columns[c]!));
  const nationalIdIndex = columns.indexOf(def.target.national_id);
  const keyFields = def.key.map((k) => def.columns[k]!.from ?? k);
  const keyColumnIndexes = def.key.map((k) => columns.indexOf(k));
  const flag = def.source.deleted_flag;
  const cursor = def.source.cursor;

  return {
    columns,
    map(record) {
      const values: WarehouseValue[] = new Array<WarehouseValue>(columns.length);
      for (let i = 0; i < columns.length; i++) {
        const converted = converters[i]!(record[fields[i]!]);
        if (!converted.ok) return converted;
        values[i] = converted.value;
      }
      const nationalId = values[nationalIdIndex];
      if (nationalId === null || nationalId === undefined) {
        return { ok: false, reason: `${def.target.national_id}: required value is missing` };
      }
      const problem = explainInvalidNationalId(String(nationalId), rule);
      if (problem !== null) return { ok: false, reason: `${def.target.national_id}: ${problem}` };
      return { ok: true, values };
    },
    mapKey(record) {
      const key: WarehouseValue[] = [];
      for (const i of keyColumnIndexes) {
        const converted = converters[i]!(record[fields[i]!]);
        if (!converted.ok || converted.value === null) return null;
        key.push(converted.value);
      }
      return key;
    },
    sourceKey: (record) => keyFields.map((f) => toSourceText(record[f])).join('|'),
    isDeletion: (record) =>
      flag !== undefined && toSourceText(record[flag.column]).trim() === String(flag.value),
    cursorOf: (record) => (cursor === undefined ? null : cursorText(record[cursor])),
  };
}
