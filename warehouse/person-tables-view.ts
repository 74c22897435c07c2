import type { Knex } from 'knex';
import { copyDialectFor } from './copy/copy-dialects.ts';
import { dialectOf } from './dialects/index.ts';
import { inWriteTransaction } from './write-transaction.ts';

/**
 * On PostgreSQL and SQLite, `hub_person_tables` (which registry tables hold each national ID)
 * is a view over the registry tables, each read through its national-ID index, instead of a
 * table every load keeps in step. Kept as a table it doubled every registry's IDs: a first load
 * of 1,000,000 persons spent 3.4 s of its 14 s writing them on PostgreSQL, with their two
 * indexes, and every incremental batch wrote its memberships again. Asked for a few IDs, the
 * view costs one index probe per registry table.
 *
 * The view lists the catalog's tables (`hub_tables`). It is replaced whenever that list
 * changes, and around each full load's swap, where the table it reads is dropped and renamed:
 * PostgreSQL drops no table a view depends on, and SQLite renames no table while a view names
 * a table that is missing.
 */
export const PERSON_TABLES = 'hub_person_tables';

export const personTablesIsView = (knex: Knex) => dialectOf(knex).personTables === 'view';

interface Listed {
  name: string;
  national_id_column: string;
}

const quoteIdentifier = (name: string) => `"${name.replace(/"/g, '""')}"`;
const quoteLiteral = (text: string) => `'${text.replace(/'/g, "''")}'`;

const isSqlite = (executor: Knex | Knex.Transaction) => dialectOf(executor).name === 'sqlite';

/** The catalog's registry tables that exist, as the view lists them. */
async function fetchListed(executor: Knex | Knex.Transaction): Promise<Listed[]> {
  const listed = await executor('hub_tables').select<Listed[]>('name', 'national_id_column').orderBy('name');
  const existing = new Set(
    await copyDialectFor(dialectOf(executor).name, 'source').fetchTableNames(executor),
  );
  return listed.filter((t) => existing.has(t.name));
}

/** What the view was built from, kept as its comment so that an unchanged catalog replaces nothing. */
const signatureOf = (listed: Listed[]) => listed.map((t) => `${t.name}(${t.national_id_column})`).join(' ');

export function buildPersonTablesViewSql(listed: Listed[]): string {
  const selects = listed.map(
    (t) =>
      `SELECT DISTINCT ${quoteIdentifier(t.national_id_column)}, CAST(${quoteLiteral(t.name)} AS varchar(64)) ` +
      `FROM ${quoteIdentifier(t.name)}`,
  );
  const body =
    selects.length === 0
      ? 'SELECT CAST(NULL AS varchar(32)), CAST(NULL AS varchar(64)) WHERE false'
      : selects.join(' UNION ALL ');
  return `CREATE VIEW ${PERSON_TABLES} (national_id, table_name) AS ${body}`;
}

/** Drops the view, so that a registry table it reads can be dropped in the same transaction. */
export async function dropPersonTablesView(executor: Knex | Knex.Transaction): Promise<void> {
  await executor.raw(`DROP VIEW IF EXISTS ${PERSON_TABLES}`);
}

/** (Re)creates the view over the catalog's registry tables as they are now. */
export async function replacePersonTablesView(executor: Knex | Knex.Transaction): Promise<void> {
  const listed = await fetchListed(executor);
  await dropPersonTablesView(executor);
  await executor.raw(buildPersonTablesViewSql(listed));
  // SQLite keeps a view's text as it was written, which is its signature there.
  if (!isSqlite(executor))
    await executor.raw(`COMMENT ON VIEW ${PERSON_TABLES} IS ${quoteLiteral(signatureOf(listed))}`);
}

/** Whether the view there now was built from `listed`. */
async function isViewOf(trx: Knex.Transaction, listed: Listed[]): Promise<boolean> {
  if (isSqlite(trx)) {
    const rows = await trx.raw<Array<{ sql: string }>>(
      "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?",
      [PERSON_TABLES],
    );
    return rows[0]?.sql === buildPersonTablesViewSql(listed);
  }
  const current = await trx.raw<{ rows: Array<{ comment: string | null }> }>(
    `SELECT obj_description(to_regclass(?), 'pg_class') AS comment`,
    [PERSON_TABLES],
  );
  return current.rows[0]?.comment === signatureOf(listed);
}

/** After the catalog changed: replaces the view only when the tables it should list differ from those it lists. */
export async function refreshPersonTablesView(knex: Knex): Promise<void> {
  if (!personTablesIsView(knex)) return;
  await inWriteTransaction(knex, async (trx) => {
    if (!(await isViewOf(trx, await fetchListed(trx)))) await replacePersonTablesView(trx);
  });
}
