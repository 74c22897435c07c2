import type { Knex } from 'knex';
import type { DialectName } from '../db.ts';
import type { Dialect } from './dialect.ts';
import { mssqlDialect } from './mssql.ts';
import { postgresDialect } from './postgres.ts';
import { sqliteDialect } from './sqlite.ts';

const DIALECTS: Record<DialectName, Dialect> = {
  sqlite: sqliteDialect,
  postgres: postgresDialect,
  mssql: mssqlDialect,
};

export function dialectFor(name: DialectName): Dialect {
  return DIALECTS[name];
}

const DIALECT_OF_CLIENT: Record<string, DialectName> = {
  'better-sqlite3': 'sqlite',
  pg: 'postgres',
  mssql: 'mssql',
};

/** The dialect of an open knex instance or transaction, for code that is handed only the executor. */
export function dialectOf(executor: Knex | Knex.Transaction): Dialect {
  const client = (executor.client as { config: { client: string } }).config.client;
  const name = DIALECT_OF_CLIENT[client];
  if (name === undefined) throw new Error(`no dialect for knex client ${client}`);
  return DIALECTS[name];
}

export type { BulkTarget, BulkWriter, Dialect, LoadThreads } from './dialect.ts';
export { rowsPerStatement, withFullLoadSettings } from './dialect.ts';
