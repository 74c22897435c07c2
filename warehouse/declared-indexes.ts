import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { RegistryTableSpec } from './registry-tables.ts';

const PREFIX = 'dx_';
const MAX_NAME = 60;

/**
 * The name of a declared index: the same table and columns always give the same name (PostgreSQL
 * keeps 63 bytes of a name, SQL Server 128), so a later run can tell whether it is there. The
 * prefix keeps declared indexes apart from the hub's own key and national ID indexes.
 */
export function buildDeclaredIndexName(table: string, columns: readonly string[]): string {
  const readable = `${PREFIX}${table}__${columns.join('__')}`;
  if (readable.length <= MAX_NAME) return readable;
  const hash = createHash('sha256')
    .update(`${table}\0${columns.join('\0')}`)
    .digest('hex')
    .slice(0, 12);
  return `${PREFIX}${table.slice(0, MAX_NAME - PREFIX.length - hash.length - 1)}_${hash}`;
}

/** How each database lists the indexes of a table, keyed by knex client. */
const LIST_INDEXES: Record<string, (knex: Knex, table: string) => Promise<string[]>> = {
  'better-sqlite3': async (knex, table) =>
    (
      await knex('sqlite_master')
        .where({ type: 'index', tbl_name: table })
        .select<Array<{ name: string }>>('name')
    ).map((r) => r.name),
  pg: async (knex, table) =>
    (
      await knex('pg_indexes')
        .where({ tablename: table })
        .whereRaw('schemaname = current_schema()')
        .select<Array<{ indexname: string }>>('indexname')
    ).map((r) => r.indexname),
  mssql: async (knex, table) =>
    (
      await knex('sys.indexes')
        .whereRaw('object_id = OBJECT_ID(?)', [table])
        .whereNotNull('name')
        .select<Array<{ name: string }>>('name')
    ).map((r) => r.name),
};

export async function listTableIndexes(knex: Knex, table: string): Promise<string[]> {
  const client = (knex.client as { config: { client: string } }).config.client;
  const list = LIST_INDEXES[client];
  if (list === undefined) throw new Error(`no index listing for knex client ${client}`);
  return list(knex, table);
}

export interface DeclaredIndexChanges {
  created: string[];
  dropped: string[];
}

/**
 * Brings a registry table's declared indexes in line with its definition: creates the missing
 * ones and drops those the definition no longer declares. Runs after a load has committed. On
 * PostgreSQL a full load has built them already (buildDeclaredIndexesOnNext); on SQLite, which
 * renames no index, it swaps in a table that has only its key and national ID indexes, and
 * queries are right without the others, only slower, for the seconds the build takes. An
 * incremental load keeps the table and finds its indexes already there.
 */
export async function ensureDeclaredIndexes(
  knex: Knex,
  spec: RegistryTableSpec,
): Promise<DeclaredIndexChanges> {
  const existing = new Set(await listTableIndexes(knex, spec.table));
  const wanted = new Map(
    (spec.indexes ?? []).map((columns) => [buildDeclaredIndexName(spec.table, columns), columns]),
  );
  const changes: DeclaredIndexChanges = { created: [], dropped: [] };
  for (const name of existing) {
    if (!name.startsWith(PREFIX) || wanted.has(name)) continue;
    await knex.schema.alterTable(spec.table, (t) => t.dropIndex([], name));
    changes.dropped.push(name);
  }
  for (const [name, columns] of wanted) {
    if (existing.has(name)) continue;
    await knex.schema.alterTable(spec.table, (t) => t.index(columns, name));
    changes.created.push(name);
  }
  return changes;
}

/** An index built on a full load's next table, and the name it takes once that table is swapped in. */
export interface PreparedIndex {
  built: string;
  final: string;
}

/**
 * A full load's declared indexes, built on its next table before the swap, where the dialect can
 * rename an index in the swap transaction: the swapped-in table has them from its first query
 * on, instead of being read without them for as long as their build takes (1.5 s at 1,000,000
 * persons), and the build runs beside the swap's own work on another connection. Named after
 * the next table, they never meet the live table's indexes of the same columns. Returns those
 * built before the first that failed.
 */
export async function buildDeclaredIndexesOnNext(
  knex: Knex,
  spec: RegistryTableSpec,
  nextTable: string,
): Promise<PreparedIndex[]> {
  const prepared: PreparedIndex[] = [];
  for (const columns of spec.indexes ?? []) {
    const built = buildDeclaredIndexName(nextTable, columns);
    try {
      await knex.schema.alterTable(nextTable, (t) => t.index(columns, built));
    } catch {
      // Left, with the ones after it, to the build after the commit, which records the error on the run.
      break;
    }
    prepared.push({ built, final: buildDeclaredIndexName(spec.table, columns) });
  }
  return prepared;
}
