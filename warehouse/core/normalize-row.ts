import type { ColumnType } from './column-types.ts';

/**
 * Drivers disagree: PostgreSQL returns 64-bit integers as text, SQLite booleans as 0/1, SQL
 * Server dates as Date. Consumers get one shape whatever the warehouse.
 */
export function normalizeValue(type: ColumnType | undefined, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (type === 'integer' && (typeof value === 'string' || typeof value === 'bigint')) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : String(value);
  }
  if (type === 'number' && typeof value === 'string') return Number(value);
  if (type === 'boolean' && (typeof value === 'number' || typeof value === 'string'))
    return value === 1 || value === '1' || value === 't';
  if (type === 'date' && value instanceof Date) return value.toISOString().slice(0, 10);
  return value;
}
