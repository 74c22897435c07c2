import type { CatalogTable } from '../catalog.ts';
import type { ColumnType } from '../core/column-types.ts';
import type { RegistryTableSpec } from '../registry-tables.ts';
import type { ColumnDescription } from './copy-dialect.ts';

/** The column type the hub would have declared as `declaredType` (SQLite's names and PostgreSQL's). */
export function mapDeclaredType(declaredType: string): ColumnType {
  if (/^(varchar|character varying|nvarchar)/.test(declaredType)) return 'string';
  if (/^(bigint|integer|int|smallint)/.test(declaredType)) return 'integer';
  if (/^(float|double|real|numeric|decimal)/.test(declaredType)) return 'number';
  if (declaredType.startsWith('bool')) return 'boolean';
  if (declaredType === 'date') return 'date';
  return 'text';
}

/**
 * A registry table as the source holds it: its columns in the source's order, typed as the
 * catalog says (so the target declares exactly what the hub would), with string sizes from
 * the source and columns a newer definition dropped (the hub never drops data) typed from
 * their declaration.
 */
export function buildRegistryCopySpec(table: CatalogTable, physical: ColumnDescription[]): RegistryTableSpec {
  const catalogTypes = new Map(table.columns.map((c) => [c.name, c.type]));
  const columns: RegistryTableSpec['columns'] =
    physical.length === 0
      ? table.columns.map((c) => ({ name: c.name, type: c.type }))
      : physical.map((c) => {
          const type = catalogTypes.get(c.name) ?? mapDeclaredType(c.declaredType);
          return { name: c.name, type, length: type === 'string' ? (c.maxLength ?? undefined) : undefined };
        });
  return { table: table.name, nationalIdColumn: table.nationalIdColumn, key: table.key, columns };
}
