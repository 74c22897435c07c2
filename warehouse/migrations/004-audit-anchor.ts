import type { Knex } from 'knex';
import { buildAppendOnlyGuards, buildAppendOnlyRevokes } from '../audit/append-only-guards.ts';
import { dialectOf } from '../dialects/index.ts';

/**
 * The audit log becomes tamper-resistant inside the database and complete about whose data
 * left the hub:
 * - `hub_audit.subjects_hash` puts each event's "who read this person" rows into the chain;
 *   rows written before this migration keep NULL and are verified as they were written.
 * - `hub_audit_subjects` gets an index by event, so verification reads them page by page.
 * - `hub_columns.holds_national_id` marks catalog columns whose values are national IDs
 *   (the person column, and e.g. a mother's or father's ID), so that every ID leaving the hub
 *   counts as read.
 * - UPDATE and DELETE on both audit tables are refused by triggers (and revoked on PostgreSQL
 *   where the role may revoke).
 */
export async function up(knex: Knex): Promise<void> {
  const dialect = dialectOf(knex).name;
  await knex.schema.alterTable('hub_audit', (t) => {
    t.string('subjects_hash', 64).nullable();
  });
  await knex.schema.alterTable('hub_audit_subjects', (t) => {
    t.index(['audit_id'], 'hub_audit_subjects_by_event');
  });
  await knex.schema.alterTable('hub_columns', (t) => {
    t.boolean('holds_national_id').notNullable().defaultTo(false);
  });
  await knex('hub_columns')
    .whereExists(
      knex('hub_tables')
        .select(knex.raw('1'))
        .whereRaw('hub_tables.name = hub_columns.table_name')
        .whereRaw('hub_tables.national_id_column = hub_columns.name'),
    )
    .update({ holds_national_id: true });
  for (const statement of buildAppendOnlyGuards(dialect)) await knex.raw(statement);
  for (const statement of buildAppendOnlyRevokes(dialect)) {
    // A role that does not own the tables cannot revoke; the triggers still hold.
    await knex.raw(
      `DO $$ BEGIN EXECUTE ${quoteLiteral(statement)}; EXCEPTION WHEN insufficient_privilege THEN NULL; END $$`,
    );
  }
}

const quoteLiteral = (text: string) => `'${text.replace(/'/g, "''")}'`;

export async function down(knex: Knex): Promise<void> {
  const dialect = dialectOf(knex).name;
  if (dialect === 'sqlite') {
    for (const table of ['hub_audit', 'hub_audit_subjects']) {
      for (const op of ['update', 'delete']) await knex.raw(`DROP TRIGGER IF EXISTS "${table}_no_${op}"`);
    }
  } else if (dialect === 'postgres') {
    for (const table of ['hub_audit', 'hub_audit_subjects']) {
      await knex.raw(`DROP TRIGGER IF EXISTS "${table}_no_change" ON "${table}"`);
      await knex.raw(`DROP TRIGGER IF EXISTS "${table}_no_truncate" ON "${table}"`);
      await knex.raw(`GRANT UPDATE, DELETE, TRUNCATE ON "${table}" TO CURRENT_USER`);
    }
    await knex.raw('DROP FUNCTION IF EXISTS hub_audit_append_only()');
  } else {
    for (const table of ['hub_audit', 'hub_audit_subjects'])
      await knex.raw(`DROP TRIGGER IF EXISTS [${table}_no_change]`);
  }
  await knex.schema.alterTable('hub_columns', (t) => t.dropColumn('holds_national_id'));
  await knex.schema.alterTable('hub_audit_subjects', (t) =>
    t.dropIndex(['audit_id'], 'hub_audit_subjects_by_event'),
  );
  await knex.schema.alterTable('hub_audit', (t) => t.dropColumn('subjects_hash'));
}
