import type { Knex } from 'knex';
import { writeWhenNotBusy } from './dialects/sqlite-turn-writer.ts';

/**
 * A transaction that reads and then writes, run again from the start when SQLite refuses it with
 * SQLITE_BUSY. A SQLite transaction that has read cannot wait for the write lock (SQLite answers
 * at once, as waiting could deadlock), and beside a serving hub another process takes that lock
 * for every turn of audit rows, several hundred times a second: a revoke, a new client or a
 * failed sign-in from another worker or from the command line was refused with "database is
 * locked". Nothing of a refused try was committed, so `work` must only touch the database.
 * Other databases wait for their locks and never see the retry.
 */
export function inWriteTransaction<T>(knex: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  return writeWhenNotBusy(() => knex.transaction(work));
}
