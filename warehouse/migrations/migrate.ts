import type { Knex } from 'knex';
import * as hubTables from './001-hub-tables.ts';
import * as access from './002-access.ts';
import * as settings from './003-settings.ts';
import * as portal from './007-portal.ts';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

const MIGRATIONS: Record<string, Migration> = {
  '001-hub-tables': hubTables,
  '002-access': access,
  '003-settings': settings,
  '007-portal': portal,
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
