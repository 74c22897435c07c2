import type { Knex } from 'knex';

/** Where a run stands while it runs (connectors/run-progress.ts), so that every hub process can show it. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hub_connector_runs', (t) => {
    t.string('phase', 16).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hub_connector_runs', (t) => {
    t.dropColumn('phase');
  });
}
