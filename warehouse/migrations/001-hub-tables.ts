import type { Knex } from 'knex';

/** The hub's own tables: catalog, connector state and runs, rejects, locks and the person key. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('hub_entities', (t) => {
    t.string('code', 16).primary();
    t.string('label_en', 200).notNullable();
    t.string('label_ar', 200).notNullable();
  });
  await knex.schema.createTable('hub_tables', (t) => {
    t.string('name', 64).primary();
    t.string('entity', 16).notNullable().references('code').inTable('hub_entities');
    t.string('connector', 64).notNullable();
    t.string('label_en', 200).notNullable();
    t.string('label_ar', 200).notNullable();
    t.string('national_id_column', 64).notNullable();
    t.string('record_key', 400).notNullable();
    t.bigInteger('row_count').notNullable().defaultTo(0);
    t.string('loaded_at', 32).nullable();
  });
  await knex.schema.createTable('hub_columns', (t) => {
    t.string('table_name', 64).notNullable().references('name').inTable('hub_tables').onDelete('CASCADE');
    t.string('name', 64).notNullable();
    t.integer('position').notNullable();
    t.string('type', 16).notNullable();
    t.string('label_en', 200).notNullable();
    t.string('label_ar', 200).notNullable();
    t.primary(['table_name', 'name']);
  });
  await knex.schema.createTable('hub_connectors', (t) => {
    t.string('name', 64).primary();
    t.string('entity', 16).notNullable();
    t.string('target_table', 64).notNullable();
    t.string('definition_file', 1000).notNullable();
    t.string('mode', 16).notNullable();
    t.string('schedule', 100).nullable();
    t.string('watermark', 100).nullable();
    t.string('tombstone_watermark', 100).nullable();
    t.integer('last_run_id').nullable();
  });
  await knex.schema.createTable('hub_connector_runs', (t) => {
    t.increments('id').primary();
    t.string('connector', 64).notNullable();
    t.string('mode', 16).notNullable();
    t.string('trigger', 16).notNullable();
    t.string('status', 16).notNullable();
    t.string('started_at', 32).notNullable();
    t.string('finished_at', 32).nullable();
    t.integer('rows_read').notNullable().defaultTo(0);
    t.integer('rows_inserted').notNullable().defaultTo(0);
    t.integer('rows_updated').notNullable().defaultTo(0);
    t.integer('rows_deleted').notNullable().defaultTo(0);
    t.integer('rows_rejected').notNullable().defaultTo(0);
    t.string('watermark_from', 100).nullable();
    t.string('watermark_to', 100).nullable();
    t.text('error').nullable();
    t.index(['connector', 'id']);
  });
  await knex.schema.createTable('hub_rejects', (t) => {
    t.bigIncrements('id').primary();
    t.string('connector', 64).notNullable();
    t.integer('run_id').notNullable();
    t.string('source_key', 400).notNullable();
    t.string('reason', 1000).notNullable();
    t.text('raw_row').notNullable();
    t.index(['connector', 'run_id']);
  });
  await knex.schema.createTable('hub_locks', (t) => {
    t.string('name', 100).primary();
    t.string('owner', 100).notNullable();
    t.string('acquired_at', 32).notNullable();
    t.string('expires_at', 32).notNullable();
  });
  await knex.schema.createTable('hub_persons', (t) => {
    t.string('national_id', 32).primary();
    t.string('first_seen_at', 32).notNullable();
  });
  await knex.schema.createTable('hub_person_tables', (t) => {
    t.string('national_id', 32).notNullable();
    t.string('table_name', 64).notNullable();
    t.primary(['table_name', 'national_id']);
    t.index(['national_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'hub_person_tables',
    'hub_persons',
    'hub_locks',
    'hub_rejects',
    'hub_connector_runs',
    'hub_connectors',
    'hub_columns',
    'hub_tables',
    'hub_entities',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
