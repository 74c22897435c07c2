import type { TableReference } from './copy-dialect.ts';
import { sortByReferences } from './sort-by-references.ts';
import { PERSON_TABLES } from '../person-tables-view.ts';

export interface CitusRegistryTable {
  name: string;
  nationalIdColumn: string;
  key: string[];
}

export interface CitusDdlInput {
  /** Where the catalog was read, for the header. */
  source: string;
  registryTables: CitusRegistryTable[];
  /** The hub's own tables, as its migrations create them. */
  hubTables: string[];
  references: TableReference[];
}

/** The person key: one row per national ID ever seen, joined with every registry table. */
const PERSON_KEY_TABLES = ['hub_persons'];
const COLOCATION_ANCHOR = 'hub_persons';
const PERSON_KEY_COLUMN = 'national_id';

/** Catalog and access configuration: small, written by an operator, read with every request. */
export const CITUS_REFERENCE_TABLES = new Set([
  'hub_entities',
  'hub_tables',
  'hub_columns',
  'hub_grants',
  'hub_grants_version',
  'hub_clients',
  'hub_users',
  'hub_queries',
  'hub_settings',
  'hub_connectors',
]);

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
const identifier = (name: string) => `"${name.replace(/"/g, '""')}"`;

function distribute(table: string, column: string, colocateWith: string | null): string {
  const colocation = colocateWith === null ? '' : `, colocate_with => ${literal(colocateWith)}`;
  return `SELECT create_distributed_table(${literal(table)}, ${literal(column)}${colocation});`;
}

/**
 * Citus enforces a unique key only within a shard, so it accepts only unique keys that contain
 * the distribution column. A record key without the national ID (a vehicle's registration
 * number) is widened to (national_id, key...); the hub then has to check the bare key itself.
 */
function widenUniqueKey(table: CitusRegistryTable): string[] {
  const columns = [table.nationalIdColumn, ...table.key].map(identifier).join(', ');
  const constraint = `ux_${table.name.slice(0, 40)}_key_citus`;
  return [
    `-- ${table.name}: its record key (${table.key.join(', ')}) does not contain ${table.nationalIdColumn}; the unique key becomes (${[table.nationalIdColumn, ...table.key].join(', ')}).`,
    'DO $$',
    'DECLARE r record;',
    'BEGIN',
    `  FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = ${literal(table.name)}::regclass AND contype IN ('p', 'u') LOOP`,
    `    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', ${literal(table.name)}, r.conname);`,
    '  END LOOP;',
    `  FOR r IN SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = ${literal(table.name)}::regclass AND indisunique LOOP`,
    "    EXECUTE format('DROP INDEX %s', r.name);",
    '  END LOOP;',
    'END $$;',
    `ALTER TABLE ${identifier(table.name)} ADD CONSTRAINT ${identifier(constraint)} UNIQUE (${columns});`,
  ];
}

/**
 * The statements that distribute a hub's warehouse on Citus. Every table keyed by national ID
 * (each registry table and the person key) is hash-distributed by it in one co-location group,
 * so every join the query engine makes (always on national ID) runs shard by shard on the
 * workers. Catalog and access configuration become reference tables (a copy on every node);
 * the rest of the hub's tables (audit, runs, rejects, locks, sessions, and any table this list
 * does not know yet) stay plain tables on the coordinator, where the hub writes them.
 */
export function buildCitusDdl(input: CitusDdlInput): string {
  const registry = [...input.registryTables].sort((a, b) => a.name.localeCompare(b.name));
  const hubTables = new Set(input.hubTables);
  const personKey = PERSON_KEY_TABLES.filter((t) => hubTables.has(t));
  const reference = sortByReferences(
    input.hubTables.filter((t) => CITUS_REFERENCE_TABLES.has(t)),
    input.references,
  );
  const local = input.hubTables
    .filter((t) => !CITUS_REFERENCE_TABLES.has(t) && !PERSON_KEY_TABLES.includes(t) && t !== PERSON_TABLES)
    .sort();
  const anchor = personKey.includes(COLOCATION_ANCHOR) ? COLOCATION_ANCHOR : null;

  const lines = [
    `-- Registry Hub on Citus: ${registry.length} registry tables and ${input.hubTables.length} hub tables of ${input.source}.`,
    '-- Run on the coordinator, once the citus extension exists (CREATE EXTENSION citus) and the warehouse',
    '-- is migrated or copied there (hub copy --to postgres://coordinator/...): psql -v ON_ERROR_STOP=1 -f this.sql',
    '',
    '-- The person key, distributed by national ID: the co-location group every registry table joins.',
    ...personKey.map((t) => distribute(t, PERSON_KEY_COLUMN, t === anchor ? null : anchor)),
    `-- ${PERSON_TABLES} is a view over the registry tables on PostgreSQL: it is distributed with them.`,
    '',
    '-- Registry tables, distributed by their national ID column and co-located with the person key.',
  ];
  for (const table of registry) {
    if (!table.key.includes(table.nationalIdColumn)) lines.push(...widenUniqueKey(table));
    lines.push(distribute(table.name, table.nationalIdColumn, anchor));
  }
  lines.push(
    '',
    '-- Catalog and access configuration: small, written rarely, read with every request; a copy on every node.',
  );
  lines.push(...reference.map((t) => `SELECT create_reference_table(${literal(t)});`));
  lines.push(
    '',
    '-- Stay plain tables on the coordinator (written with every request or run, never joined with registry tables;',
    '-- the audit chain is appended under one lock):',
    `-- ${local.join(', ')}`,
  );
  return `${lines.join('\n')}\n`;
}
