import { closeWarehouse, openWarehouse } from '../db.ts';
import { migrateWarehouse } from '../migrations/migrate.ts';
import { sqliteCopy } from './sqlite-copy.ts';

/** knex's own bookkeeping: each warehouse keeps the record of its own migrations. */
export const MIGRATION_TABLES = new Set(['hub_migrations', 'hub_migrations_lock']);

/**
 * The hub's own tables, as its migrations create them, with the rows the migrations seed
 * (a grants version, signing keys). Read from a scratch in-memory warehouse, so tables that
 * newer migrations add are known without a list kept by hand.
 */
export async function fetchFreshHubSchema(): Promise<Map<string, number>> {
  const scratch = openWarehouse('sqlite::memory:');
  try {
    await migrateWarehouse(scratch.knex);
    const tables = new Map<string, number>();
    for (const name of await sqliteCopy.fetchTableNames(scratch.knex)) {
      if (MIGRATION_TABLES.has(name)) continue;
      const row = await scratch.knex(name).count<Array<{ n: number }>>({ n: '*' });
      tables.set(name, Number(row[0]?.n ?? 0));
    }
    return tables;
  } finally {
    await closeWarehouse(scratch);
  }
}
