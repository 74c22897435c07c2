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

export type { BulkTarget, BulkWriter, Dialect } from './dialect.ts';
export { rowsPerStatement } from './dialect.ts';
