import type { Knex } from 'knex';
import { readRawRows, type ReadBinding } from '../../warehouse/prepared-reads.ts';
import type { AppContext } from '../context.ts';

/**
 * Registry rows from the read replica while it is within its allowed lag (HUB_DB_READ), else
 * from the prepared reads on the primary: on SQLite the connection the API keeps, whose page
 * cache the process's own audit writes leave warm (a pooled reader's is emptied by every commit).
 * The ability that chose the columns was read from the primary, so a revoke counts however far
 * the replica lags.
 */
export function readRegistryRows<T>(
  ctx: Pick<AppContext, 'replica' | 'reads'>,
  sql: string,
  bindings: readonly ReadBinding[],
): Promise<T[]> {
  const replica = ctx.replica?.pick() ?? null;
  return replica === null ? ctx.reads.all<T>(sql, bindings) : readRawRows<T>(replica, sql, bindings);
}

/** readRegistryRows of a query built by the query engine (its bindings are strings, numbers, booleans and nulls). */
export function readBuiltRows<T>(
  ctx: Pick<AppContext, 'replica' | 'reads'>,
  query: Knex.QueryBuilder,
): Promise<T[]> {
  const { sql, bindings } = query.toSQL();
  return readRegistryRows<T>(ctx, sql, bindings as ReadBinding[]);
}
