import type { Knex } from 'knex';

interface ConnectionPool {
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<unknown>;
}

/**
 * Borrows the driver's own connection from knex's pool, for the bulk paths knex does not
 * offer (better-sqlite3 prepared statements, PostgreSQL COPY). Inside a transaction, knex
 * hands out the transaction's connection.
 */
export async function withRawConnection<C, T>(
  knex: Knex | Knex.Transaction,
  work: (connection: C) => Promise<T> | T,
): Promise<T> {
  const pool = knex.client as ConnectionPool;
  const connection = (await pool.acquireConnection()) as C;
  try {
    return await work(connection);
  } finally {
    await pool.releaseConnection(connection);
  }
}

export async function acquireRawConnection<C>(
  knex: Knex,
): Promise<{ connection: C; release: () => Promise<void> }> {
  const pool = knex.client as ConnectionPool;
  const connection = (await pool.acquireConnection()) as C;
  return { connection, release: async () => void (await pool.releaseConnection(connection)) };
}
