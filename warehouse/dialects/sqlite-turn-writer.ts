import type { Database } from 'better-sqlite3';
import type { Knex } from 'knex';
import { withRawConnection } from './raw-connection.ts';
import { prepareOnce } from './sqlite-statements.ts';

/** A kind of small write that many requests make; the items of one turn are written together. */
export interface TurnWrite<I, R> {
  readonly name: string;
  /** Runs inside the turn's transaction; one result per item, in order. */
  write(db: Database, items: readonly I[]): R[];
}

interface Waiter {
  resolve(result: unknown): void;
  reject(err: unknown): void;
}

interface Queue {
  kind: TurnWrite<unknown, unknown>;
  items: unknown[];
  waiters: Waiter[];
}

type Outcome = { ok: true; results: unknown[] } | { ok: false; error: unknown };

const BUSY_RETRY_MS = 15_000;

/**
 * How long a turn that found the write lock taken tries again at each next turn of the event
 * loop, before pausing between tries. Another hub worker's turn holds the lock for well under a
 * millisecond, and two busy workers on one file find it taken on four tries in ten (README, API
 * benchmark): a pause of 5 ms or more per collision made two workers barely faster than one, and
 * SQLite's own wait sleeps at least a millisecond with the event loop stopped. A lock held
 * longer (a load run from the command line builds an index or swaps a table) is waited for with
 * pauses.
 */
const RETRY_EACH_TURN_MS = 5;

/**
 * The longest pause between a turn's tries after that. A turn's try costs no wait inside SQLite
 * (its busy handler is off), and the serving hub's who-read indexing leaves the lock free for
 * SQLITE_PAUSE_BETWEEN_STEPS_MS after each of its transactions: a turn that tries at least every
 * 6 ms takes it then, where one pausing up to 37.5 ms missed gap after gap while a merge ran its
 * few dozen transactions, and its answers waited up to half a second.
 */
export const TURN_MAX_PAUSE_MS = 4;

/**
 * The write lock a background writer on SQLite (the serving hub's who-read indexing) leaves free
 * after each of its transactions: longer than a turn's longest pause (TURN_MAX_PAUSE_MS and half
 * again), so that the turns waiting meanwhile take it before the writer goes on.
 */
export const SQLITE_PAUSE_BETWEEN_STEPS_MS = 10;

const isSqliteBusy = (err: unknown): boolean =>
  typeof err === 'object' &&
  err !== null &&
  'code' in err &&
  typeof err.code === 'string' &&
  err.code.startsWith('SQLITE_BUSY');

/**
 * The API's small writes on SQLite (each request's rate-limit count, each answer's audit event)
 * gathered for one turn of the event loop and written in one transaction on the writer's own
 * connection, with prepared statements, synchronously. SQLite has one writer, and every commit
 * writes its pages to the WAL: the requests answered in one turn then share one commit instead
 * of paying one each, and no other code runs between the statements of a turn.
 *
 * Each kind runs in a savepoint of its own, so a kind that fails (a refused value) fails only its
 * own items. SQLITE_BUSY from another process (a read snapshot that went stale before the write)
 * retries the whole turn after a short pause, as nothing of it was committed. One turn is written
 * at a time, in order; what arrives meanwhile goes in the next.
 */
export class SqliteTurnWriter {
  readonly #knex: Knex;
  /** The connection turns are written on, and how to end the read snapshot it may hold (TurnSnapshot). */
  #shared: { db: Database; endReads: () => void } | null = null;
  #queues = new Map<TurnWrite<unknown, unknown>, Queue>();
  #scheduled = false;
  #flushing: Promise<void> | null = null;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  /**
   * Writes the turns on `db` from now on, or on the writer's own connection again when null. The
   * API hands over the reader connection it keeps for its prepared reads: SQLite empties a
   * connection's whole page cache once another connection has committed, so with the turns
   * written elsewhere every request's reads began from a cold cache (a person lookup's reads took
   * twice as long). The writer's connection is still taken for each turn, as the lock that keeps a
   * turn out of a transaction this process holds open on it, such as a load's. `endReads` ends
   * the read snapshot the connection may hold between turns (TurnSnapshot) before a turn writes.
   */
  shareConnection(db: Database | null, endReads: () => void = () => undefined): void {
    this.#shared = db === null ? null : { db, endReads };
  }

  /** Resolves with the item's result once its turn is committed; rejects if its kind or the commit failed. */
  submit<I, R>(kind: TurnWrite<I, R>, item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const key = kind as TurnWrite<unknown, unknown>;
      let queue = this.#queues.get(key);
      if (queue === undefined) this.#queues.set(key, (queue = { kind: key, items: [], waiters: [] }));
      queue.items.push(item);
      queue.waiters.push({ resolve, reject });
      this.#schedule();
    });
  }

  /** Resolves when every item submitted so far is written (or has failed). */
  async settle(): Promise<void> {
    while (this.#queues.size > 0 || this.#flushing !== null) {
      await (this.#flushing ?? this.#startFlush());
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing !== null) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#flushing === null) void this.#startFlush();
    });
  }

  #startFlush(): Promise<void> {
    this.#flushing ??= this.#flush().then(() => {
      this.#flushing = null;
      if (this.#queues.size > 0) this.#schedule();
    });
    return this.#flushing;
  }

  /** Never rejects: each item's error goes to its waiter. */
  async #flush(): Promise<void> {
    // Filled at each try: a turn that waited for the lock takes along what arrived meanwhile, one
    // commit fewer, and with two workers one emptying of the other's page cache fewer.
    const taken = new Map<TurnWrite<unknown, unknown>, Queue>();
    let outcomes: Outcome[];
    try {
      outcomes = await writeWhenNotBusy(
        () =>
          withRawConnection(this.#knex, (db: Database) => {
            this.#takeQueued(taken);
            return this.#tryTurn(db, [...taken.values()]);
          }),
        { retryEachTurnMs: RETRY_EACH_TURN_MS, maxPauseMs: TURN_MAX_PAUSE_MS },
      );
    } catch (err) {
      for (const queue of taken.values()) for (const waiter of queue.waiters) waiter.reject(err);
      return;
    }
    [...taken.values()].forEach((queue, i) => {
      const outcome = outcomes[i]!;
      queue.waiters.forEach((waiter, j) =>
        outcome.ok ? waiter.resolve(outcome.results[j]) : waiter.reject(outcome.error),
      );
    });
  }

  /** Moves what was submitted since into `taken`, after the items of the same kind it holds. */
  #takeQueued(taken: Map<TurnWrite<unknown, unknown>, Queue>): void {
    for (const [kind, queue] of this.#queues) {
      const held = taken.get(kind);
      if (held === undefined) taken.set(kind, queue);
      else {
        held.items.push(...queue.items);
        held.waiters.push(...queue.waiters);
      }
    }
    this.#queues = new Map();
  }

  #tryTurn(writerDb: Database, queues: readonly Queue[]): Outcome[] {
    const shared = this.#shared;
    shared?.endReads();
    return writeTurn(shared?.db ?? writerDb, queues);
  }
}

function writeTurn(db: Database, queues: readonly Queue[]): Outcome[] {
  const outcomes: Outcome[] = [];
  const write = db.transaction(() => {
    for (const queue of queues) {
      try {
        // A transaction inside a transaction is a savepoint in better-sqlite3.
        const results = db.transaction(() => queue.kind.write(db, queue.items))();
        outcomes.push({ ok: true, results });
      } catch (error) {
        if (isSqliteBusy(error)) throw error;
        outcomes.push({ ok: false, error });
      }
    }
  });
  withoutWaitingForLock(db, () => write.immediate());
  return outcomes;
}

/**
 * Runs `work` with the connection's busy handler off: a write lock another process holds is
 * answered SQLITE_BUSY at once, and writeWhenNotBusy tries again between turns of the event loop.
 * SQLite's own wait would stop this process's event loop, every request with it.
 */
function withoutWaitingForLock<T>(db: Database, work: () => T): T {
  const usual = prepareOnce(db, 'PRAGMA busy_timeout').pluck().get() as number;
  prepareOnce(db, 'PRAGMA busy_timeout = 0').run();
  try {
    return work();
  } finally {
    prepareOnce(db, `PRAGMA busy_timeout = ${usual}`).run();
  }
}

/** The longest pause between two tries for the write lock, unless the caller sets its own. */
const MAX_PAUSE_MS = 25;

/**
 * The pause before the next try: 1, 2, 4, 8, 16 ms, then 25 (or `maxPauseMs`), each lengthened
 * by up to half at random so that two waiting processes drift apart. A lock held a few
 * milliseconds (another worker's turn, its process descheduled mid-commit on a busy machine) is
 * taken soon after it is released; a pause of 5 to 25 ms from the first held every request of
 * the turn for that long. A lock held for seconds (a load's index build) is tried about 30 times
 * a second, or about 200 at a turn's cap of 4 ms.
 */
export function pauseBeforeTry(pausesSoFar: number, maxPauseMs = MAX_PAUSE_MS): number {
  return Math.min(maxPauseMs, 2 ** pausesSoFar) * (1 + Math.random() / 2);
}

/**
 * On SQLite a transaction that has read cannot wait for another connection's write lock: SQLite
 * answers SQLITE_BUSY at once instead of calling the busy handler, since waiting could deadlock.
 * Retrying after a short random pause lets the other writer commit first. For the first
 * `retryEachTurnMs` after the first try, `work` runs again at the next turn of the event loop
 * instead, for a lock that is about to be released.
 */
export async function writeWhenNotBusy<T>(
  work: () => Promise<T>,
  { retryEachTurnMs = 0, maxPauseMs = MAX_PAUSE_MS }: { retryEachTurnMs?: number; maxPauseMs?: number } = {},
): Promise<T> {
  const start = Date.now();
  let pauses = 0;
  for (;;) {
    try {
      return await work();
    } catch (err) {
      const waited = Date.now() - start;
      if (!isSqliteBusy(err) || waited > BUSY_RETRY_MS) throw err;
      if (waited < retryEachTurnMs) await new Promise((resolve) => setImmediate(resolve));
      else await new Promise((resolve) => setTimeout(resolve, pauseBeforeTry(pauses++, maxPauseMs)));
    }
  }
}

const writers = new WeakMap<Knex, SqliteTurnWriter>();

/** The turn writer of one SQLite warehouse connection pool: every writer on that knex shares its turns. */
export function findSqliteTurnWriter(knex: Knex): SqliteTurnWriter {
  let writer = writers.get(knex);
  if (writer === undefined) writers.set(knex, (writer = new SqliteTurnWriter(knex)));
  return writer;
}
