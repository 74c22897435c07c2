import type { Knex } from 'knex';
import { buildAppendOnlyGuards } from '../audit/append-only-guards.ts';
import { indexWhoRead, WHO_READ_RUNS, WHO_READ_TABLE } from '../audit/who-read-index.ts';
import { dialectOf } from '../dialects/index.ts';

/**
 * "Who read this person" moves from the audit's subject rows to an index of sorted runs
 * (who-read-index.ts):
 * - `hub_audit_subjects` is keyed by (event, national ID), so an answer appends its rows at the
 *   end instead of into 200 random pages of a national-ID key; on SQLite it is stored in that
 *   order (WITHOUT ROWID), the event index beside it no longer needed;
 * - `hub_audit_who_read` holds the runs, keyed by (run, national ID, event);
 *   `hub_audit_who_read_runs` lists them, with the events each covers;
 * - the subject rows already logged become the first run.
 */
const SUBJECTS = 'hub_audit_subjects';
const REBUILT = `${SUBJECTS}__rebuilt`;
const COLUMNS = 'audit_id, national_id';

async function rebuildSqliteSubjects(knex: Knex, key: string, storage: string): Promise<void> {
  await knex.raw(
    `CREATE TABLE "${REBUILT}" (audit_id bigint NOT NULL, national_id varchar(32) NOT NULL, PRIMARY KEY (${key})) ${storage}`,
  );
  await knex.raw(
    `INSERT INTO "${REBUILT}" (${COLUMNS}) SELECT ${COLUMNS} FROM "${SUBJECTS}" ORDER BY ${key}`,
  );
  // Dropping the table drops its append-only triggers (without firing them); they are made again below.
  await knex.schema.dropTable(SUBJECTS);
  await knex.schema.renameTable(REBUILT, SUBJECTS);
  for (const statement of buildAppendOnlyGuards('sqlite')) await knex.raw(statement);
}

/** The schema of the change, without the first indexing pass: apart, so its SQL Server statements can be compiled in a test. */
export async function reshapeForWhoReadRuns(knex: Knex): Promise<void> {
  if (dialectOf(knex).name === 'sqlite') {
    await rebuildSqliteSubjects(knex, 'audit_id, national_id', 'WITHOUT ROWID');
    await knex.raw(
      `CREATE TABLE "${WHO_READ_TABLE}" (run bigint NOT NULL, national_id varchar(32) NOT NULL, audit_id bigint NOT NULL, PRIMARY KEY (run, national_id, audit_id)) WITHOUT ROWID`,
    );
  } else {
    await knex.schema.alterTable(SUBJECTS, (t) => {
      t.dropPrimary();
      t.dropIndex(['audit_id'], 'hub_audit_subjects_by_event');
    });
    await knex.schema.alterTable(SUBJECTS, (t) => t.primary(['audit_id', 'national_id']));
    await knex.schema.createTable(WHO_READ_TABLE, (t) => {
      t.bigInteger('run').notNullable();
      t.string('national_id', 32).notNullable();
      t.bigInteger('audit_id').notNullable();
      t.primary(['run', 'national_id', 'audit_id']);
    });
  }
  await knex.schema.createTable(WHO_READ_RUNS, (t) => {
    t.bigInteger('run').notNullable().primary();
    t.integer('level').notNullable();
    t.bigInteger('first_audit_id').notNullable();
    t.bigInteger('last_audit_id').notNullable();
    t.bigInteger('row_count').notNullable();
    // 'live' runs answer lookups; a 'building' run is a merge in progress.
    t.string('state', 16).notNullable();
    t.string('touched_at', 32).notNullable();
  });
}

export async function up(knex: Knex): Promise<void> {
  await reshapeForWhoReadRuns(knex);
  await indexWhoRead(knex, { wholeTail: true });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable(WHO_READ_RUNS);
  await knex.schema.dropTable(WHO_READ_TABLE);
  if (dialectOf(knex).name === 'sqlite') {
    await rebuildSqliteSubjects(knex, 'national_id, audit_id', '');
    await knex.raw(`CREATE INDEX hub_audit_subjects_by_event ON "${SUBJECTS}" (audit_id)`);
  } else {
    await knex.schema.alterTable(SUBJECTS, (t) => t.dropPrimary());
    await knex.schema.alterTable(SUBJECTS, (t) => {
      t.primary(['national_id', 'audit_id']);
      t.index(['audit_id'], 'hub_audit_subjects_by_event');
    });
  }
}
