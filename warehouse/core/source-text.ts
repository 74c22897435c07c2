/**
 * The text of a source value as a person would read it: '' for nothing, ISO 8601 for dates,
 * JSON for nested objects (an API may send one where a scalar was expected).
 */
export function toSourceText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? '' : value.toISOString();
  return JSON.stringify(value) ?? '';
}
