import { permittedFieldsOf } from '@casl/ability/extra';
import type { CatalogTable } from '../warehouse/catalog.ts';
import type { TableAbility } from './ability.ts';

/**
 * The columns of `table` the ability may read, in catalog order. A rule without fields is a
 * whole-table grant and stands for every column the catalog has now; a granted column that
 * has left the catalog is not returned.
 */
export function permittedColumns(ability: TableAbility, table: CatalogTable): string[] {
  const catalogColumns = table.columns.map((c) => c.name);
  const permitted = new Set(
    permittedFieldsOf(ability, 'read', table.name, { fieldsFrom: (rule) => rule.fields ?? catalogColumns }),
  );
  return catalogColumns.filter((name) => permitted.has(name));
}

/**
 * The columns of `table` a person lookup returns. The lookup finds rows by their national ID
 * column, so it reads that column: a table whose national ID column is not readable takes no
 * part, or changing a person's ID there (a value the entity may not read) would move rows in
 * or out of its answer.
 */
export function permittedPersonColumns(ability: TableAbility, table: CatalogTable): string[] {
  const columns = permittedColumns(ability, table);
  return columns.includes(table.nationalIdColumn) ? columns : [];
}
