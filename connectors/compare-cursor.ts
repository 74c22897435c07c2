import type { SourceRecord } from './sources/source.ts';

const INTEGER = /^-?\d+$/;
const NUMERIC = /^-?\d+(\.\d+)?$/;

/** Cursors are sequences or rowversions (compared as numbers, exactly past 2^53) or ISO timestamps (compared as text). */
export function compareCursor(a: string, b: string): number {
  if (INTEGER.test(a) && INTEGER.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x === y ? 0 : x < y ? -1 : 1;
  }
  if (NUMERIC.test(a) && NUMERIC.test(b)) return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

export function maxCursor(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return compareCursor(a, b) >= 0 ? a : b;
}

/** The text of a cursor value; a missing or empty one is never past any watermark. */
export function cursorText(value: unknown): string | null {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value !== 'string') return null;
  const text = value.trim();
  return text === '' ? null : text;
}

/** The comparison that sets the watermark decides what is past it. */
export function isPastWatermark(value: unknown, since: string): boolean {
  const text = cursorText(value);
  return text !== null && compareCursor(text, since) > 0;
}

/** Incremental reads of sources that cannot filter themselves: keep records whose cursor is past the watermark. */
export async function* filterPastWatermark(
  records: AsyncIterable<SourceRecord>,
  cursor: string | undefined,
  since: string | null,
): AsyncGenerator<SourceRecord> {
  if (cursor === undefined || since === null) {
    yield* records;
    return;
  }
  for await (const record of records) if (isPastWatermark(record[cursor], since)) yield record;
}
