import type { Knex } from 'knex';

/** Who may read what (grants), who calls (clients, users), saved queries, and the audit log. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('hub_grants', (t) => {
    t.string('entity', 16).notNullable();
    t.string('table_name', 64).notNullable();
    // '' is a whole-table grant: every column, including columns added later.
    t.string('column_name', 64).notNullable();
    t.string('granted_by', 100).notNullable();
    t.string('granted_at', 32).notNullable();
    t.primary(['entity', 'table_name', 'column_name']);
  });
  await knex.schema.createTable('hub_grants_version', (t) => {
    t.integer('id').primary();
    t.bigInteger('version').notNullable();
  });
  await knex('hub_grants_version').insert({ id: 1, version: 1 });
  await knex.schema.createTable('hub_clients', (t) => {
    t.string('client_id', 64).primary();
    t.string('entity', 16).notNullable();
    t.string('name', 200).notNullable();
    t.string('secret_hash', 300).notNullable();
    t.string('status', 16).notNullable();
    t.text('allowed_ips').nullable();
    t.integer('rate_per_minute').notNullable();
    t.integer('rate_per_day').notNullable();
    t.string('created_at', 32).notNullable();
    t.string('secret_rotated_at', 32).notNullable();
  });
  await knex.schema.createTable('hub_users', (t) => {
    t.string('username', 64).primary();
    t.string('entity', 16).notNullable();
    t.string('role', 32).notNullable();
    t.string('password_hash', 300).notNullable();
    t.string('totp_secret', 100).notNullable();
    t.string('status', 16).notNullable();
    t.integer('failed_logins').notNullable().defaultTo(0);
    t.string('locked_until', 32).nullable();
    t.string('created_at', 32).notNullable();
  });
  await knex.schema.createTable('hub_queries', (t) => {
    t.string('name', 64).primary();
    t.string('entity', 16).notNullable();
    t.text('description').notNullable();
    t.text('definition').notNullable();
    t.string('saved_by', 100).notNullable();
    t.string('saved_at', 32).notNullable();
    t.index(['entity']);
  });
  await knex.schema.createTable('hub_audit', (t) => {
    t.bigIncrements('id').primary();
    t.string('at', 32).notNullable();
    t.string('actor', 100).notNullable();
    t.string('entity', 16).nullable();
    t.string('action', 64).notNullable();
    t.string('target', 400).nullable();
    t.text('details').notNullable();
    t.string('prev_hash', 64).notNullable();
    t.string('hash', 64).notNullable();
  });
  await knex.schema.createTable('hub_audit_subjects', (t) => {
    t.bigInteger('audit_id').notNullable();
    t.string('national_id', 32).notNullable();
    t.primary(['national_id', 'audit_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['hub_audit_subjects', 'hub_audit', 'hub_queries', 'hub_users', 'hub_clients', 'hub_grants_version', 'hub_grants']) {
    await knex.schema.dropTableIfExists(table);
  }
}
