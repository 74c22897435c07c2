import type { ConnectorDefinition } from '../definition.ts';
import type { SourceRecord } from '../sources/source.ts';
import { explainInvalidNationalId, type NationalIdRule } from '../../warehouse/core/national-id.ts';
import { compileValueMapper, Rejection } from './convert-value.ts';
import { cursorText } from '../compare-cursor.ts';
import { toSourceText } from '../../warehouse/core/source-text.ts';

import type { WarehouseValue } from '../../warehouse/core/warehouse-value.ts';
export type { WarehouseValue };

export type MappedRow = { ok: true; values: WarehouseValue[] } | { ok: false; reason: string };

/** Maps one kind of record: source objects keyed by field name, or arrays in a source's column order. */
export interface RowMapper<R = SourceRecord> {
  /** Target columns, in the order of `values`. */
  columns: string[];
  map(record: R): MappedRow;
  /** Only the record key, converted like the row: enough to delete a record whose other fields are bad. */
  mapKey(record: R): WarehouseValue[] | null;
  /** The record key as the source has it, for rejects and messages. */
  sourceKey(record: R): string;
  /** Whether the record is a soft deletion. */
  isDeletion(record: R): boolean;
  /** The record's cursor value as text (the next watermark candidate), or null. */
  cursorOf(record: R): string | null;
}

type FieldReader<R> = (field: string) => (record: R) => unknown;

/** Compiles a connector's column mappings into one function from a source record to a warehouse row. */
export function compileRowMapper(def: ConnectorDefinition, rule: NationalIdRule): RowMapper {
  return compileMapper<SourceRecord>(def, rule, (field) => (record) => record[field]);
}

/**
 * The same mapping for records that arrive as arrays in the order of `fields` (a SQL source's
 * result columns): a load of millions of rows builds no object per row.
 */
export function compileArrayRowMapper(
  def: ConnectorDefinition,
  rule: NationalIdRule,
  fields: readonly string[],
): RowMapper<unknown[]> {
  return compileMapper<unknown[]>(def, rule, (field) => {
    const at = fields.indexOf(field);
    return at === -1 ? () => undefined : (row) => row[at];
  });
}

function compileMapper<R>(
  def: ConnectorDefinition,
  rule: NationalIdRule,
  read: FieldReader<R>,
): RowMapper<R> {
  const columns = Object.keys(def.columns);
  const readers = columns.map((c) => read(def.columns[c]!.from ?? c));
  const converters = columns.map((c) => compileValueMapper(c, def.columns[c]!));
  const nationalIdIndex = columns.indexOf(def.target.national_id);
  const keyReaders = def.key.map((k) => read(def.columns[k]!.from ?? k));
  const keyColumnIndexes = def.key.map((k) => columns.indexOf(k));
  const flag = def.source.deleted_flag;
  const readFlag = flag === undefined ? null : read(flag.column);
  const flagValue = flag === undefined ? '' : String(flag.value);
  const readCursor = def.source.cursor === undefined ? null : read(def.source.cursor);

  return {
    columns,
    map(record) {
      const values: WarehouseValue[] = new Array<WarehouseValue>(columns.length);
      for (let i = 0; i < columns.length; i++) {
        const value = converters[i]!(readers[i]!(record));
        if (value instanceof Rejection) return { ok: false, reason: value.reason };
        values[i] = value;
      }
      const nationalId = values[nationalIdIndex];
      if (nationalId === null || nationalId === undefined) {
        return { ok: false, reason: `${def.target.national_id}: required value is missing` };
      }
      const problem = explainInvalidNationalId(String(nationalId), rule);
      if (problem !== null) return { ok: false, reason: `${def.target.national_id}: ${problem}` };
      // A row without its record key cannot be stored (the key columns are NOT NULL): a reject, not a failed load.
      for (const i of keyColumnIndexes) {
        if (values[i] === null) return { ok: false, reason: `${columns[i]}: record key value is missing` };
      }
      return { ok: true, values };
    },
    mapKey(record) {
      const key: WarehouseValue[] = [];
      for (const i of keyColumnIndexes) {
        const value = converters[i]!(readers[i]!(record));
        if (value instanceof Rejection || value === null) return null;
        key.push(value);
      }
      return key;
    },
    sourceKey: (record) => keyReaders.map((readKey) => toSourceText(readKey(record))).join('|'),
    isDeletion: (record) => readFlag !== null && toSourceText(readFlag(record)).trim() === flagValue,
    cursorOf: (record) => (readCursor === null ? null : cursorText(readCursor(record))),
  };
}
