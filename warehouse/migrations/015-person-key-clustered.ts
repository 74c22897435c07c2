import type { Knex } from 'knex';
import { dialectOf } from '../dialects/index.ts';

/**
 * On SQLite the person key's two tables become WITHOUT ROWID tables, stored in their primary
 * key's order. 001 gave them text primary keys, which SQLite keeps twice: as a rowid table and
 * as a unique index beside it. With one B-tree each instead of two, a registry's first load
 * writes less into the key (at 1,000,000 persons, 1.2 s became 1.0 s). PostgreSQL and SQL
 * Server keep their tables: they have no rowid to drop.
 */
const CLUSTERED = {
  hub_persons:
    'CREATE TABLE ?? (national_id varchar(32) NOT NULL PRIMARY KEY, first_seen_at varchar(32) NOT NULL) WITHOUT ROWID',
  hub_person_tables:
    'CREATE TABLE ?? (national_id varchar(32) NOT NULL, table_name varchar(64) NOT NULL, PRIMARY KEY (table_name, national_id)) WITHOUT ROWID',
};

const ROWID = {
  hub_persons:
    'CREATE TABLE ?? (national_id varchar(32) NOT NULL PRIMARY KEY, first_seen_at varchar(32) NOT NULL)',
  hub_person_tables:
    'CREATE TABLE ?? (national_id varchar(32) NOT NULL, table_name varchar(64) NOT NULL, PRIMARY KEY (table_name, national_id))',
};

const COLUMNS = {
  hub_persons: ['national_id', 'first_seen_at'],
  hub_person_tables: ['national_id', 'table_name'],
};

async function rebuild(knex: Knex, definitions: Record<keyof typeof CLUSTERED, string>): Promise<void> {
  for (const table of ['hub_persons', 'hub_person_tables'] as const) {
    const next = `${table}__rebuilt`;
    await knex.raw(definitions[table], [next]);
    await knex.raw(
      `INSERT INTO ?? (${COLUMNS[table].join(', ')}) SELECT ${COLUMNS[table].join(', ')} FROM ??`,
      [next, table],
    );
    await knex.schema.dropTable(table);
    await knex.schema.renameTable(next, table);
  }
  await knex.raw('CREATE INDEX hub_person_tables_national_id_index ON hub_person_tables (national_id)');
}

export async function up(knex: Knex): Promise<void> {
  if (dialectOf(knex).name === 'sqlite') await rebuild(knex, CLUSTERED);
}

export async function down(knex: Knex): Promise<void> {
  if (dialectOf(knex).name === 'sqlite') await rebuild(knex, ROWID);
}
