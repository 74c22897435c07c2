import type { Knex } from 'knex';

/**
 * The hub's secret keys leave the warehouse: they come from configuration (the key file or
 * HUB_SECRET_KEY), so that a reader of a database backup can neither mint a token nor compute
 * a one-time code.
 *
 * - The token signing key stored by 003-settings is deleted; tokens it signed stop verifying.
 * - TOTP secrets were stored in plain text, and so sit in every backup taken until now:
 *   encrypting them in place would not take them back out of those backups. They are cleared
 *   instead, and each user gets a new authenticator with `hub users reset-totp <username>`.
 *   New secrets are stored sealed (AES-256-GCM, `<kid>.<iv>.<ciphertext>`), longer than before.
 * - totp_last_step remembers the time step of the last accepted code, so a code works once.
 * - hub_token_failures counts failed token requests per address and per client id in fixed
 *   windows, in the warehouse, so every hub process on it throttles from the same count.
 *
 * Client secret hashes are left as they are: an scrypt hash still verifies (and is replaced by
 * an HMAC at the client's next successful token request).
 */
export async function up(knex: Knex): Promise<void> {
  await knex('hub_settings').where({ name: 'token_signing_key' }).delete();
  // SQLite does not enforce a varchar length, and altering a column there rebuilds the table.
  if ((knex.client as { config: Knex.Config }).config.client !== 'better-sqlite3') {
    await knex.schema.alterTable('hub_users', (t) => {
      t.string('totp_secret', 200).notNullable().alter();
    });
  }
  await knex.schema.alterTable('hub_users', (t) => {
    t.bigInteger('totp_last_step').nullable();
  });
  await knex('hub_users').update({ totp_secret: '' });
  await knex.schema.createTable('hub_token_failures', (t) => {
    // 'address:<ip>' or 'client:<client_id>'.
    t.string('subject', 120).notNullable();
    // Start of the window, in milliseconds since the epoch.
    t.bigInteger('window_start').notNullable();
    t.integer('failures').notNullable();
    t.primary(['subject', 'window_start']);
    t.index(['window_start']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('hub_token_failures');
  await knex.schema.alterTable('hub_users', (t) => {
    t.dropColumn('totp_last_step');
  });
}
