import type { Knex } from 'knex';
import type { ColumnType } from './core/column-types.ts';
import type { RegistryTableSpec } from './registry-tables.ts';
import { saveRowByKey } from './save-by-key.ts';
import { inWriteTransaction } from './write-transaction.ts';

export interface Label {
  en: string;
  ar: string;
}

export interface CatalogTableInput extends RegistryTableSpec {
  entity: { code: string; label: Label };
  connector: string;
  label: Label;
  columns: Array<{
    name: string;
    type: ColumnType;
    length?: number | undefined;
    label: Label;
    holdsNationalId?: boolean;
  }>;
}

export interface CatalogColumn {
  name: string;
  type: ColumnType;
  label: Label;
  /** Its values are national IDs (the person's own column, or another's such as a mother's): returning one counts as reading that person. */
  holdsNationalId?: boolean;
}

export interface CatalogTable {
  name: string;
  entity: string;
  connector: string;
  label: Label;
  nationalIdColumn: string;
  key: string[];
  rowCount: number;
  loadedAt: string | null;
  columns: CatalogColumn[];
}

/** Writes entities, tables and columns; columns no longer defined leave the catalog. */
export async function saveCatalogTable(knex: Knex, input: CatalogTableInput): Promise<void> {
  await inWriteTransaction(knex, async (trx) => {
    await saveRowByKey(
      trx,
      'hub_entities',
      { code: input.entity.code },
      { label_en: input.entity.label.en, label_ar: input.entity.label.ar },
    );
    await saveRowByKey(
      trx,
      'hub_tables',
      { name: input.table },
      {
        entity: input.entity.code,
        connector: input.connector,
        label_en: input.label.en,
        label_ar: input.label.ar,
        national_id_column: input.nationalIdColumn,
        record_key: input.key.join(','),
      },
    );
    await trx('hub_columns').where({ table_name: input.table }).delete();
    await trx('hub_columns').insert(
      input.columns.map((c, position) => ({
        table_name: input.table,
        name: c.name,
        position,
        type: c.type,
        label_en: c.label.en,
        label_ar: c.label.ar,
        holds_national_id: c.name === input.nationalIdColumn || c.holdsNationalId === true,
      })),
    );
  });
}

interface TableRow {
  name: string;
  entity: string;
  connector: string;
  label_en: string;
  label_ar: string;
  national_id_column: string;
  record_key: string;
  row_count: number | string;
  loaded_at: string | null;
}

interface ColumnRow {
  table_name: string;
  name: string;
  type: ColumnType;
  label_en: string;
  label_ar: string;
  holds_national_id: boolean | number;
}

export async function fetchCatalog(knex: Knex): Promise<CatalogTable[]> {
  const tables = await knex<TableRow>('hub_tables').select('*').orderBy('name');
  const columns = await knex<ColumnRow>('hub_columns').select('*').orderBy(['table_name', 'position']);
  return tables.map((t) => ({
    name: t.name,
    entity: t.entity,
    connector: t.connector,
    label: { en: t.label_en, ar: t.label_ar },
    nationalIdColumn: t.national_id_column,
    key: t.record_key.split(','),
    rowCount: Number(t.row_count),
    loadedAt: t.loaded_at,
    columns: columns
      .filter((c) => c.table_name === t.name)
      .map((c) => ({
        name: c.name,
        type: c.type,
        label: { en: c.label_en, ar: c.label_ar },
        holdsNationalId: c.holds_national_id === true || c.holds_national_id === 1,
      })),
  }));
}

export async function fetchEntities(knex: Knex): Promise<Array<{ code: string; label: Label }>> {
  const rows = await knex<{ code: string; label_en: string; label_ar: string }>('hub_entities')
    .select('*')
    .orderBy('code');
  return rows.map((r) => ({ code: r.code, label: { en: r.label_en, ar: r.label_ar } }));
}
