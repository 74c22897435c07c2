import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * The admin portal's state: sessions every hub process can read (so a restart or a second
 * process keeps people signed in), the key that signs the session cookie, whether a user has
 * enrolled a one-time-code app, and the purpose, legal basis and expiry a grant is made under.
 * Columns another migration may already have added are left alone.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('hub_sessions', (t) => {
    t.string('sid', 128).primary();
    t.text('data').notNullable();
    t.string('expires_at', 32).notNullable();
    t.index(['expires_at']);
  });
  await knex('hub_settings').insert({
    name: 'session_cookie_key',
    value: randomBytes(32).toString('base64url'),
  });
  if (!(await knex.schema.hasColumn('hub_users', 'totp_enrolled_at'))) {
    await knex.schema.alterTable('hub_users', (t) => t.string('totp_enrolled_at', 32).nullable());
  }
  for (const [column, length] of [
    ['purpose', 400],
    ['legal_basis', 400],
    ['expires_at', 32],
  ] as const) {
    if (!(await knex.schema.hasColumn('hub_grants', column))) {
      await knex.schema.alterTable('hub_grants', (t) => t.string(column, length).nullable());
    }
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('hub_sessions');
  await knex('hub_settings').where({ name: 'session_cookie_key' }).delete();
}
