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
