import type { Knex } from 'knex';
import { dialectOf } from '../dialects/index.ts';
import { dropPersonTablesView, replacePersonTablesView } from '../person-tables-view.ts';
import { fillMembershipTable } from './016-person-tables-view.ts';

/**
 * SQLite's table of memberships becomes the view PostgreSQL has had since 016. A registry's
 * first load of 1,000,000 persons wrote a million rows into it and its index, and a reload
 * compared the table with them both ways; person lookups now find a person by probing the
 * readable tables themselves. The view shows the same rows the table held.
 */
export async function up(knex: Knex): Promise<void> {
  if (dialectOf(knex).name !== 'sqlite') return;
  await knex.schema.dropTable('hub_person_tables');
  await replacePersonTablesView(knex);
}

/** Back to the table as 015 left it: stored in its key's order, with its national-ID index. */
export async function down(knex: Knex): Promise<void> {
  if (dialectOf(knex).name !== 'sqlite') return;
  await dropPersonTablesView(knex);
  await knex.raw(
    'CREATE TABLE hub_person_tables (national_id varchar(32) NOT NULL, table_name varchar(64) NOT NULL, ' +
      'PRIMARY KEY (table_name, national_id)) WITHOUT ROWID',
  );
  await knex.raw('CREATE INDEX hub_person_tables_national_id_index ON hub_person_tables (national_id)');
  await fillMembershipTable(knex);
}
