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
