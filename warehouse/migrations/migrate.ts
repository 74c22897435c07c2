import type { Knex } from 'knex';
import * as hubTables from './001-hub-tables.ts';
import * as access from './002-access.ts';
import * as settings from './003-settings.ts';
import * as auditAnchor from './004-audit-anchor.ts';
import * as keysOutOfWarehouse from './005-keys-out-of-warehouse.ts';
import * as grantPurpose from './006-grant-purpose.ts';
import * as portal from './007-portal.ts';
import * as dci from './008-dci.ts';
import * as sharedRateLimits from './013-shared-rate-limits.ts';
import * as sessionKeyOutOfWarehouse from './014-session-key-out-of-warehouse.ts';
import * as personKeyClustered from './015-person-key-clustered.ts';
import * as personTablesView from './016-person-tables-view.ts';
import * as sqlitePersonTablesView from './017-sqlite-person-tables-view.ts';
import * as whoReadRuns from './018-who-read-runs.ts';
import * as lockHolder from './019-lock-holder.ts';
import * as runPhase from './020-run-phase.ts';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

const MIGRATIONS: Record<string, Migration> = {
  '001-hub-tables': hubTables,
  '002-access': access,
  '003-settings': settings,
  '004-audit-anchor': auditAnchor,
  '005-keys-out-of-warehouse': keysOutOfWarehouse,
  '006-grant-purpose': grantPurpose,
  '007-portal': portal,
  '008-dci': dci,
  '013-shared-rate-limits': sharedRateLimits,
  '014-session-key-out-of-warehouse': sessionKeyOutOfWarehouse,
  '015-person-key-clustered': personKeyClustered,
  '016-person-tables-view': personTablesView,
  '017-sqlite-person-tables-view': sqlitePersonTablesView,
  '018-who-read-runs': whoReadRuns,
  '019-lock-holder': lockHolder,
  '020-run-phase': runPhase,
};

/** Migrations are compiled in, not read from a folder, so the installed hub carries its own schema. */
const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: () => Promise.resolve(Object.keys(MIGRATIONS)),
  getMigrationName: (name) => name,
  getMigration: (name) => Promise.resolve(MIGRATIONS[name]!),
};

export async function migrateWarehouse(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource, tableName: 'hub_migrations' })) as [
    number,
    string[],
  ];
  return applied;
}

/** The compiled-in migrations this warehouse has not applied yet, read without changing anything. */
export async function findPendingMigrations(knex: Knex): Promise<string[]> {
  const known = Object.keys(MIGRATIONS);
  if (!(await knex.schema.hasTable('hub_migrations'))) return known;
  const applied = new Set(await knex('hub_migrations').pluck<string[]>('name'));
  return known.filter((name) => !applied.has(name));
}
