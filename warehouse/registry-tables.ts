import type { Knex } from 'knex';
import type { ColumnType } from './core/column-types.ts';

/** What the warehouse needs to know of a registry table; connectors describe it. */
export interface RegistryTableSpec {
  table: string;
  nationalIdColumn: string;
  key: string[];
  columns: Array<{ name: string; type: ColumnType; length?: number | undefined }>;
  /** Declared indexes (connector `indexes:`), each a list of columns in order. */
  indexes?: string[][];
}

const NATIONAL_ID_LENGTH = 32;

function addColumn(
  t: Knex.CreateTableBuilder,
  spec: RegistryTableSpec,
  column: RegistryTableSpec['columns'][number],
) {
  // Indexed columns need a bounded size (SQL Server cannot index nvarchar(max)).
  const indexed = column.name === spec.nationalIdColumn || spec.key.includes(column.name);
  switch (column.type) {
    case 'string':
      return t.string(
        column.name,
        column.name === spec.nationalIdColumn ? NATIONAL_ID_LENGTH : (column.length ?? 255),
      );
    case 'text':
      return indexed ? t.string(column.name, 400) : t.text(column.name);
    case 'integer':
      return t.bigInteger(column.name);
    case 'number':
      return t.double(column.name);
    case 'boolean':
      return t.boolean(column.name);
    case 'date':
      return t.date(column.name);
    case 'datetime':
      return t.string(column.name, 19);
  }
}

/**
 * Index names carry a suffix because a full load builds the next version of a table beside
 * the current one, and index names are unique per schema on PostgreSQL and SQL Server.
 */
export function indexNames(spec: RegistryTableSpec, suffix: string) {
  const base = spec.table.slice(0, 40);
  return { nationalId: `ix_${base}_nid_${suffix}`, key: `ux_${base}_key_${suffix}` };
}

export async function createRegistryTable(
  executor: Knex | Knex.Transaction,
  spec: RegistryTableSpec,
  tableName: string,
  options: { indexes: boolean; suffix: string },
): Promise<void> {
  await executor.schema.createTable(tableName, (t) => {
    for (const column of spec.columns) {
      const builder = addColumn(t, spec, column);
      if (column.name === spec.nationalIdColumn || spec.key.includes(column.name)) builder.notNullable();
    }
  });
  if (options.indexes) await createRegistryIndexes(executor, spec, tableName, options.suffix);
}

export async function createRegistryIndexes(
  executor: Knex | Knex.Transaction,
  spec: RegistryTableSpec,
  tableName: string,
  suffix: string,
): Promise<void> {
  await createKeyIndex(executor, spec, tableName, suffix);
  await createNationalIdIndex(executor, spec, tableName, suffix);
}

export async function createKeyIndex(
  executor: Knex | Knex.Transaction,
  spec: RegistryTableSpec,
  tableName: string,
  suffix: string,
): Promise<void> {
  await executor.schema.alterTable(tableName, (t) =>
    t.unique(spec.key, { indexName: indexNames(spec, suffix).key }),
  );
}

/** The record key is the national ID alone: the table holds each national ID once, under a unique index. */
export const isKeyedByNationalId = (spec: RegistryTableSpec): boolean =>
  spec.key.length === 1 && spec.key[0] === spec.nationalIdColumn;

/** When the record key is the national ID, its unique index already serves lookups by national ID. */
export async function createNationalIdIndex(
  executor: Knex | Knex.Transaction,
  spec: RegistryTableSpec,
  tableName: string,
  suffix: string,
): Promise<void> {
  if (isKeyedByNationalId(spec)) return;
  await executor.schema.alterTable(tableName, (t) =>
    t.index([spec.nationalIdColumn], indexNames(spec, suffix).nationalId),
  );
}

/** Creates the table when missing and adds columns a newer definition brought; never drops data. */
export async function ensureRegistryTable(knex: Knex, spec: RegistryTableSpec): Promise<void> {
  if (!(await knex.schema.hasTable(spec.table))) {
    await createRegistryTable(knex, spec, spec.table, { indexes: true, suffix: 'v0' });
    return;
  }
  const existing = new Set(Object.keys(await knex(spec.table).columnInfo()));
  const missing = spec.columns.filter((c) => !existing.has(c.name));
  if (missing.length === 0) return;
  await knex.schema.alterTable(spec.table, (t) => {
    for (const column of missing) addColumn(t, spec, column).nullable();
  });
}
