import type { Knex } from 'knex';
import { dialectOf } from '../dialects/index.ts';
import { insertMemberships } from '../person-key.ts';
import { dropPersonTablesView, replacePersonTablesView } from '../person-tables-view.ts';

/**
 * On PostgreSQL the person key's table memberships become a view (warehouse/person-tables-view.ts):
 * the table 001 created gives way to it. The view shows the same rows the table held: the
 * loads kept both in step with the registry tables. (SQLite followed in 017.)
 */
export async function up(knex: Knex): Promise<void> {
  if (dialectOf(knex).name !== 'postgres') return;
  await knex.schema.dropTable('hub_person_tables');
  await replacePersonTablesView(knex);
}

export async function down(knex: Knex): Promise<void> {
  if (dialectOf(knex).name !== 'postgres') return;
  await dropPersonTablesView(knex);
  await knex.schema.createTable('hub_person_tables', (t) => {
    t.string('national_id', 32).notNullable();
    t.string('table_name', 64).notNullable();
    t.primary(['table_name', 'national_id']);
    t.index(['national_id']);
  });
  await fillMembershipTable(knex);
}

/** Lists in the table of memberships every national ID of every catalog table there is. */
export async function fillMembershipTable(knex: Knex): Promise<void> {
  const listed = await knex('hub_tables').select<Array<{ name: string; national_id_column: string }>>(
    'name',
    'national_id_column',
  );
  for (const { name, national_id_column } of listed) {
    if (await knex.schema.hasTable(name)) await insertMemberships(knex, name, name, national_id_column);
  }
  await dialectOf(knex).analyzeTable(knex, 'hub_person_tables');
}
