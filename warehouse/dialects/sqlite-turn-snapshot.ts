import type { Database } from 'better-sqlite3';
import { prepareOnce } from './sqlite-statements.ts';

/**
 * One read transaction for the reads a connection makes in one turn of the event loop. Outside a
 * transaction every SQLite statement is a read transaction of its own, and beginning one in WAL
 * mode takes a lock on the WAL index and checks the file's size: three system calls, about as
 * long as a primary-key read itself. A person lookup makes five such reads (the client, the
 * grants version, which tables hold the person, and each holding table); the lookups answered in
 * one turn now share one snapshot instead of starting one each.
 *
 * A snapshot is never older than the moment its owner asks for a fresh one (end): the API asks
 * when a request arrives, so that a request never reads a state from before it was sent, and
 * PreparedReads asks before every statement the hub writes, so the process reads its own writes.
 * Otherwise it ends in the check phase of the event loop, with the turn.
 */
export class TurnSnapshot {
  readonly #db: Database;
  #endScheduled = false;
  /** A transaction this snapshot began is open. */
  #open = false;

  constructor(db: Database) {
    this.#db = db;
  }

  /** Begins the turn's snapshot unless one is open; the first read after BEGIN fixes what it sees. */
  enter(): void {
    // Inside a transaction of another writer on this connection (none reads today), read in it.
    if (this.#db.inTransaction) return;
    prepareOnce(this.#db, 'BEGIN').run();
    this.#open = true;
    if (this.#endScheduled) return;
    this.#endScheduled = true;
    setImmediate(() => {
      this.#endScheduled = false;
      this.end();
    });
  }

  /**
   * Ends the open snapshot, if any: the next read sees every commit made before this call. Only
   * the snapshot's own transaction is ended, never a turn that SqliteTurnWriter is writing on
   * the same connection (its statements are announced to the same listeners).
   */
  end(): void {
    if (!this.#open) return;
    this.#open = false;
    if (this.#db.inTransaction) prepareOnce(this.#db, 'COMMIT').run();
  }
}
