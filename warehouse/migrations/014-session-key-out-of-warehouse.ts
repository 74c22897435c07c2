import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * The key that signs portal session cookies leaves the warehouse: cookies are signed with the
 * keyring's `portal-session` subkey (server/portal/portal-session.ts), so a copy of the database,
 * which lists every live session id, cannot be turned into a signed-in cookie.
 *
 * The stored key is deleted, and with it the sessions whose cookies it signed: those cookies no
 * longer verify, so everyone signs in once more. The old key stays in backups taken before this
 * migration, but nothing checks cookies against it any more.
 */
export async function up(knex: Knex): Promise<void> {
  await knex('hub_settings').where({ name: 'session_cookie_key' }).delete();
  await knex('hub_sessions').delete();
}

/** A warehouse moved back to 007's code needs a stored key again: a new one, since the old one is gone. */
export async function down(knex: Knex): Promise<void> {
  await knex('hub_settings').insert({
    name: 'session_cookie_key',
    value: randomBytes(32).toString('base64url'),
  });
}
