import type { Knex } from 'knex';

/** SQL Server's limit on parameters per request. */
export const SQL_SERVER_MAX_PARAMETERS = 2100;

/**
 * A transaction for code that sends raw statements: each one is compiled with the given SQL
 * Server client and kept in `statements`, instead of run (SQL Server cannot run here).
 */
export function compilingRawTransaction(mssql: Knex, statements: Knex.Sql[]): Knex.Transaction {
  return {
    raw(sql: string, bindings: readonly Knex.RawBinding[] = []) {
      statements.push(mssql.raw(sql, [...bindings]).toSQL());
      return Promise.resolve();
    },
  } as unknown as Knex.Transaction;
}
