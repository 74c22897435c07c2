import type { CatalogTable } from '../warehouse/catalog.ts';
import { HubError } from '../warehouse/core/errors.ts';
import type { QueryDefinition } from '../warehouse/query/query-definition.ts';
import {
  validateQueryDefinition,
  type ColumnRef,
  type QueryReads,
} from '../warehouse/query/validate-query.ts';
import type { TableAbility } from './ability.ts';

export type { ColumnRef, QueryReads };

/**
 * Explicit reads (saved queries, query builder): one 403 naming everything denied, not the
 * first thing. A table the entity may not read at all is named once, as a table (403
 * `table_not_granted`); its columns are not listed again. Otherwise each denied `table.column`
 * is named (403 `column_not_granted`).
 */
export function authorizeRead(ability: TableAbility, reads: QueryReads): void {
  const tables = [...new Set(reads.tables.filter((t) => !ability.can('read', t)))].sort();
  const columns = [
    ...new Set(
      reads.columns
        .filter((r) => !tables.includes(r.table) && !ability.can('read', r.table, r.column))
        .map((r) => `${r.table}.${r.column}`),
    ),
  ].sort();
  if (tables.length === 0 && columns.length === 0) return;
  const denied = [...tables, ...columns];
  throw new HubError(
    tables.length > 0 ? 'table_not_granted' : 'column_not_granted',
    403,
    `not granted: ${[...tables.map((t) => `table ${t}`), ...columns].join(', ')}`,
    { denied, tables, columns },
  );
}

/**
 * A definition checked against the catalog (400) and then against what the entity may read
 * now (403). Saving, running, listing and documenting a query all ask this one function, so a
 * query is listed exactly when it would run.
 */
export function authorizeQuery(
  ability: TableAbility,
  def: QueryDefinition,
  catalog: readonly CatalogTable[],
): QueryReads {
  const reads = validateQueryDefinition(def, catalog);
  authorizeRead(ability, reads);
  return reads;
}

/** True when the query would run now; a definition that no longer fits the catalog would not. */
export function isQueryRunnable(
  ability: TableAbility,
  def: QueryDefinition,
  catalog: readonly CatalogTable[],
): boolean {
  try {
    authorizeQuery(ability, def, catalog);
    return true;
  } catch (err) {
    if (err instanceof HubError && (err.status === 400 || err.status === 403)) return false;
    throw err;
  }
}
