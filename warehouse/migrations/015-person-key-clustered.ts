import type { Knex } from 'knex';
import { dialectOf } from '../dialects/index.ts';

/**
 * On SQLite the person key's two tables become WITHOUT ROWID tables, stored in their primary
 * key's order. 001 gave them text primary keys, which SQLite keeps twice: as a rowid table and
 * as a unique index beside it. With one B-tree each instead of two, a registry's first load
 * writes less into the key (at 1,000,000 persons, 1.2 s became 1.0 s). PostgreSQL and SQL
 * Server keep their tables: they have no rowid to drop.
 */
/** Each table as 001 declared it, for `CREATE TABLE <name> (...)`, with the columns it copies. */
const TABLES = {
  hub_persons: {
    body: 'national_id varchar(32) NOT NULL PRIMARY KEY, first_seen_at varchar(32) NOT NULL',
    columns: ['national_id', 'first_seen_at'],
  },
  hub_person_tables: {
    body: 'national_id varchar(32) NOT NULL, table_name varchar(64) NOT NULL, PRIMARY KEY (table_name, national_id)',
    columns: ['national_id', 'table_name'],
  },
};

async function rebuild(knex: Knex, storage: 'WITHOUT ROWID' | ''): Promise<void> {
  for (const [table, { body, columns }] of Object.entries(TABLES)) {
    const next = `${table}__rebuilt`;
    await knex.raw(`CREATE TABLE ?? (${body}) ${storage}`, [next]);
    await knex.raw(`INSERT INTO ?? (${columns.join(', ')}) SELECT ${columns.join(', ')} FROM ??`, [
      next,
      table,
    ]);
    await knex.schema.dropTable(table);
    await knex.schema.renameTable(next, table);
  }
  await knex.raw('CREATE INDEX hub_person_tables_national_id_index ON hub_person_tables (national_id)');
}

export async function up(knex: Knex): Promise<void> {
  if (dialectOf(knex).name === 'sqlite') await rebuild(knex, 'WITHOUT ROWID');
}

export async function down(knex: Knex): Promise<void> {
  if (dialectOf(knex).name === 'sqlite') await rebuild(knex, '');
}
