import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * Settings every hub process on one warehouse must share, such as the key that signs API
 * tokens: a token issued by one process is accepted by the others.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('hub_settings', (t) => {
    t.string('name', 64).primary();
    t.text('value').notNullable();
  });
  await knex('hub_settings').insert({ name: 'token_signing_key', value: randomBytes(32).toString('base64url') });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('hub_settings');
}
