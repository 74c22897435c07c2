import type { CatalogTable } from '../catalog.ts';

/** The longest national ID a deployment may configure (HUB_NATIONAL_ID_LENGTH), and the size of hub_audit_subjects.national_id. */
const MAX_NATIONAL_ID_LENGTH = 32;

/** One value that leaves the hub: the table and column it comes from, and the value. */
export type ReturnedCell = readonly [table: string, column: string, value: unknown];

// Every API answer asks; the catalog cache hands out the same array until it reads the catalog again.
const flaggedByCatalog = new WeakMap<readonly CatalogTable[], Set<string>>();

/** "table.column" of every column whose values are national IDs. */
function findFlaggedColumns(catalog: readonly CatalogTable[]): Set<string> {
  let flagged = flaggedByCatalog.get(catalog);
  if (flagged === undefined) {
    flagged = new Set<string>();
    for (const table of catalog) {
      for (const column of table.columns)
        if (column.holdsNationalId === true) flagged.add(`${table.name}.${column.name}`);
    }
    flaggedByCatalog.set(catalog, flagged);
  }
  return flagged;
}

/**
 * The national IDs among returned values: every value of a column the catalog marks as holding
 * national IDs (the person column of each table, and columns declared `national_id: true` in
 * their connector, such as a mother's or father's ID). Each is a person whose data left the hub.
 * A value longer than any national ID can be is not one.
 */
export function collectReturnedNationalIds(
  catalog: readonly CatalogTable[],
  cells: Iterable<ReturnedCell>,
): string[] {
  const flagged = findFlaggedColumns(catalog);
  const ids = new Set<string>();
  for (const [table, column, value] of cells) {
    if (typeof value !== 'string' && typeof value !== 'number') continue;
    const id = String(value);
    if (id !== '' && id.length <= MAX_NATIONAL_ID_LENGTH && flagged.has(`${table}.${column}`)) ids.add(id);
  }
  return [...ids];
}
