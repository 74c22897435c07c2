import type { CatalogTable } from '../catalog.ts';

/** One value that leaves the hub: the table and column it comes from, and the value. */
export type ReturnedCell = readonly [table: string, column: string, value: unknown];

/**
 * The national IDs among returned values: every value of a column the catalog marks as holding
 * national IDs (the person column of each table, and columns declared `national_id: true` in
 * their connector, such as a mother's or father's ID). Each is a person whose data left the hub.
 */
export function collectReturnedNationalIds(
  catalog: readonly CatalogTable[],
  cells: Iterable<ReturnedCell>,
): string[] {
  const flagged = new Set<string>();
  for (const table of catalog) {
    for (const column of table.columns)
      if (column.holdsNationalId === true) flagged.add(`${table.name}.${column.name}`);
  }
  const ids = new Set<string>();
  for (const [table, column, value] of cells) {
    if (typeof value !== 'string' && typeof value !== 'number') continue;
    if (value !== '' && flagged.has(`${table}.${column}`)) ids.add(String(value));
  }
  return [...ids];
}
