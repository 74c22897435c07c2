import type { Knex } from 'knex';

/** Which process holds a lock (warehouse/process-identity.ts), so that one on the same machine can free it at once when that process has ended. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hub_locks', (t) => {
    t.string('holder', 100).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hub_locks', (t) => {
    t.dropColumn('holder');
  });
}
