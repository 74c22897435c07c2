import type { Knex } from 'knex';
import { dialectOf } from './dialects/index.ts';
import { writeWhenNotBusy } from './dialects/sqlite-turn-writer.ts';

/** How long SQLite itself waits for the lock: its wait stops the event loop of a serving process. */
const SHORT_LOCK_WAIT_MS = 5;

/**
 * A transaction that writes, on SQLite holding the write lock from its first statement. A SQLite
 * transaction that reads first holds a snapshot, and once another connection commits it can no
 * longer write: SQLite answers SQLITE_BUSY at once, without waiting, and no pause helps. Beside
 * a serving hub another process commits a turn of audit rows several hundred times a second, so
 * a revoke, a new client, a load's swap or a catalog change from another worker or from the
 * command line was refused with "database is locked" (a load's swap, which counts the old
 * table's rows first, every time). Taking the lock first, the transaction's reads see the last
 * commit and nothing can commit before its own.
 *
 * The lock is waited for inside SQLite for a few milliseconds only, so a serving process's event
 * loop never stops longer; past that the try is rolled back before `work` ran and started again
 * between turns of the event loop (for as long as SQLite's usual busy timeout). `work` may still
 * run twice should SQLite refuse a statement after the lock (it does not in WAL mode), so it
 * must only touch the database. Other databases wait for their row locks and need neither.
 */
export function inWriteTransaction<T>(knex: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  if (dialectOf(knex).name !== 'sqlite') return knex.transaction(work);
  return writeWhenNotBusy(() =>
    knex.transaction(async (trx) => {
      await takeSqliteWriteLock(trx);
      return work(trx);
    }),
  );
}

/**
 * The first statement of the transaction writes (nothing: SQLite takes the write lock for a
 * write statement before it finds the rows, and waits for it only when the transaction holds no
 * snapshot yet), as `BEGIN IMMEDIATE` would, which knex does not issue.
 */
async function takeSqliteWriteLock(trx: Knex.Transaction): Promise<void> {
  const [{ timeout: usual }] = (await trx.raw('PRAGMA busy_timeout')) as [{ timeout: number }];
  await trx.raw(`PRAGMA busy_timeout = ${SHORT_LOCK_WAIT_MS}`);
  try {
    await trx.raw('DELETE FROM hub_locks WHERE 0');
  } finally {
    await trx.raw(`PRAGMA busy_timeout = ${usual}`);
  }
}
