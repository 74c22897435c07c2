import type { Knex } from 'knex';

/**
 * DCI APIs: a client's Ed25519 public key (a client with a key must sign its messages), the
 * transactions that txn/status reports on, subscriptions and the messages the CRVS receiving
 * endpoints accept. Transactions keep statuses only, never registry records: a status check
 * made after a revoke must not hand back data the caller may no longer read.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hub_clients', (t) => {
    t.text('dci_public_key').nullable();
  });
  await knex.schema.createTable('hub_dci_transactions', (t) => {
    t.string('correlation_id', 64).primary();
    t.string('registry', 16).notNullable();
    t.string('client_id', 64).notNullable();
    t.string('transaction_id', 99).notNullable();
    t.string('txn_type', 16).notNullable();
    t.string('status', 8).notNullable();
    t.text('reference_ids').notNullable();
    t.text('response').nullable();
    t.string('created_at', 32).notNullable();
    t.string('updated_at', 32).notNullable();
    t.index(['client_id', 'transaction_id']);
  });
  await knex.schema.createTable('hub_dci_subscriptions', (t) => {
    t.string('code', 64).primary();
    t.string('registry', 16).notNullable();
    t.string('client_id', 64).notNullable();
    t.string('event_type', 200).notNullable();
    t.text('filter').notNullable();
    t.string('notify_record_type', 200).notNullable();
    t.text('sender_uri').nullable();
    t.string('status', 16).notNullable();
    t.string('created_at', 32).notNullable();
    t.index(['client_id']);
  });
  // What each subscription has been told: a record key and a hash of the record as notified.
  await knex.schema.createTable('hub_dci_notified', (t) => {
    t.string('subscription_code', 64).notNullable();
    t.string('record_key', 200).notNullable();
    t.string('record_hash', 64).notNullable();
    t.primary(['subscription_code', 'record_key']);
  });
  await knex.schema.createTable('hub_dci_received', (t) => {
    t.increments('id').primary();
    t.string('registry', 16).notNullable();
    t.string('client_id', 64).notNullable();
    t.string('action', 32).notNullable();
    t.string('message_id', 200).notNullable();
    t.string('transaction_id', 99).nullable();
    t.string('correlation_id', 64).notNullable();
    t.text('body').notNullable();
    t.string('received_at', 32).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'hub_dci_received',
    'hub_dci_notified',
    'hub_dci_subscriptions',
    'hub_dci_transactions',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
  await knex.schema.alterTable('hub_clients', (t) => {
    t.dropColumn('dci_public_key');
  });
}
