import type { CatalogTable } from '../catalog.ts';

/** The longest national ID a deployment may configure (HUB_NATIONAL_ID_LENGTH), and the size of hub_audit_subjects.national_id. */
const MAX_NATIONAL_ID_LENGTH = 32;

/**
 * Where an answer's national IDs are: every column the catalog marks as holding national IDs
 * (the person column of each table, and columns declared `national_id: true` in their connector,
 * such as a mother's or father's ID). Each value there is a person whose data left the hub.
 */
export interface NationalIdColumns {
  /** A table's national-ID columns, none for a table the catalog does not know. */
  ofTable(table: string): readonly string[];
  /** Whether a query page's "table.column" holds national IDs. */
  holds(reference: string): boolean;
}

// Every API answer asks; the catalog cache hands out the same array until it reads the catalog again.
const columnsByCatalog = new WeakMap<readonly CatalogTable[], NationalIdColumns>();

export function findNationalIdColumns(catalog: readonly CatalogTable[]): NationalIdColumns {
  let found = columnsByCatalog.get(catalog);
  if (found === undefined) {
    const byTable = new Map<string, string[]>();
    const references = new Set<string>();
    for (const table of catalog) {
      const held = table.columns.filter((c) => c.holdsNationalId === true).map((c) => c.name);
      byTable.set(table.name, held);
      for (const column of held) references.add(`${table.name}.${column}`);
    }
    found = { ofTable: (table) => byTable.get(table) ?? [], holds: (reference) => references.has(reference) };
    columnsByCatalog.set(catalog, found);
  }
  return found;
}

/** Adds a returned value of a national-ID column; a value longer than any national ID can be is not one. */
export function addReturnedNationalId(ids: Set<string>, value: unknown): void {
  if (typeof value !== 'string' && typeof value !== 'number') return;
  const id = String(value);
  if (id !== '' && id.length <= MAX_NATIONAL_ID_LENGTH) ids.add(id);
}
