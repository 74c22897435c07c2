import type { Statement, Database } from 'better-sqlite3';
import type { Knex } from 'knex';
import type { Warehouse } from './db.ts';
import { findSqliteTurnWriter } from './dialects/sqlite-turn-writer.ts';
import { acquireRawConnection, withRawConnection } from './dialects/raw-connection.ts';
import { TurnSnapshot } from './dialects/sqlite-turn-snapshot.ts';

/** A binding of a prepared read: what every driver accepts (SQLite a boolean as 1 or 0, as knex binds it). */
export type ReadBinding = string | number | boolean | null;

const toSqliteBinding = (binding: ReadBinding) => (typeof binding === 'boolean' ? Number(binding) : binding);

interface HeldConnection {
  db: Database;
  statements: Map<string, Statement>;
  snapshot: TurnSnapshot;
  release(): Promise<void>;
}

/**
 * The kept connection also writes the API's turns of rate-limit counts and audit events (see
 * SqliteTurnWriter.shareConnection): writable, and as durable as the writer's own connection.
 */
const TURN_WRITING_PRAGMAS = ['query_only = OFF', 'synchronous = NORMAL'];

/** More distinct statements than the API ever runs; past it the cache starts over rather than grow. */
const MAX_STATEMENTS = 1_000;

/**
 * The few reads every API request makes (the client, the grants version, the person lookup),
 * run from SQL text built once instead of through the query builder each time. On SQLite they
 * run synchronously on one reader connection kept for them, as prepared better-sqlite3
 * statements: no query compilation and no pool round per statement, which on the embedded
 * warehouse cost more than the reads themselves. Other databases run the text through the
 * reader pool, whose drivers keep their connections open. The SQL text uses `?` placeholders,
 * as knex's `toSQL().sql` gives it.
 *
 * On the kept connection the reads of one turn of the event loop share a read transaction
 * (TurnSnapshot). It ends when the turn does, before every statement the hub's own writer runs
 * (so the process reads its writes), before a turn of audit rows and rate-limit counts is written
 * on the same connection, and whenever endSnapshot is called: the API calls it as each request
 * arrives, so no request reads a state older than itself and a revoke or a disabled client
 * counts from the next request.
 */
export class PreparedReads {
  readonly #reader: Knex;
  readonly #knex: Knex;
  /** SQLite with a reader pool of its own: one connection is kept for these reads. */
  readonly #keepsConnection: boolean;
  readonly #sqlite: boolean;
  #held: Promise<HeldConnection> | null = null;
  /** The kept connection once it is held, for ending its snapshot synchronously. */
  #current: HeldConnection | null = null;
  #closed = false;
  readonly #endSnapshot = (): void => this.endSnapshot();

  constructor(warehouse: Pick<Warehouse, 'reader' | 'knex' | 'dialect'>) {
    this.#reader = warehouse.reader;
    this.#knex = warehouse.knex;
    this.#sqlite = warehouse.dialect === 'sqlite';
    // An in-memory or read-only SQLite hub has one connection in all, which must not be kept.
    this.#keepsConnection = this.#sqlite && warehouse.reader !== warehouse.knex;
    // Knex emits 'query' synchronously just before it runs the statement, COMMIT included.
    if (this.#keepsConnection) this.#knex.on('query', this.#endSnapshot);
  }

  /** The next read sees every commit made so far, by any connection or process. */
  endSnapshot(): void {
    this.#current?.snapshot.end();
  }

  /** Every row the statement returns. */
  async all<T>(sql: string, bindings: readonly ReadBinding[]): Promise<T[]> {
    if (this.#keepsConnection) {
      const held = await this.#hold();
      return runStatement<T>(held, sql, bindings);
    }
    if (this.#sqlite) {
      return withRawConnection(
        this.#reader,
        (db: Database) => db.prepare(sql).all(...bindings.map(toSqliteBinding)) as T[],
      );
    }
    return readRawRows<T>(this.#reader, sql, bindings);
  }

  /** The first row, or undefined. */
  async first<T>(sql: string, bindings: readonly ReadBinding[]): Promise<T | undefined> {
    return (await this.all<T>(sql, bindings))[0];
  }

  /** Gives the kept connection back to the pool, so the warehouse can close. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#knex.off('query', this.#endSnapshot);
    this.endSnapshot();
    this.#current = null;
    const held = this.#held;
    this.#held = null;
    if (held !== null) await (await held.catch(() => null))?.release();
  }

  #hold(): Promise<HeldConnection> {
    if (this.#closed) return Promise.reject(new Error('the prepared reads are closed'));
    this.#held ??= acquireRawConnection<Database>(this.#reader).then(
      ({ connection, release }) => {
        const turns = findSqliteTurnWriter(this.#knex);
        for (const pragma of TURN_WRITING_PRAGMAS) connection.pragma(pragma);
        const snapshot = new TurnSnapshot(connection);
        turns.shareConnection(connection, () => snapshot.end());
        this.#current = {
          db: connection,
          statements: new Map(),
          snapshot,
          release: async () => {
            turns.shareConnection(null);
            snapshot.end();
            connection.pragma('query_only = ON');
            await release();
          },
        };
        return this.#current;
      },
      (err: unknown) => {
        this.#held = null;
        throw err;
      },
    );
    return this.#held;
  }
}

function runStatement<T>(held: HeldConnection, sql: string, bindings: readonly ReadBinding[]): T[] {
  let statement = held.statements.get(sql);
  if (statement === undefined) {
    if (held.statements.size >= MAX_STATEMENTS) held.statements.clear();
    statement = held.db.prepare(sql);
    held.statements.set(sql, statement);
  }
  held.snapshot.enter();
  return statement.all(...bindings.map(toSqliteBinding)) as T[];
}

/** The rows of one statement run through a knex pool, as every driver returns them (PostgreSQL's in `rows`). */
export async function readRawRows<T>(
  knex: Knex,
  sql: string,
  bindings: readonly ReadBinding[],
): Promise<T[]> {
  const result = (await knex.raw(sql, [...bindings])) as { rows: T[] } | T[];
  return Array.isArray(result) ? result : result.rows;
}

/** The SQL text of a built query, placeholders left as `?`, for PreparedReads. */
export function compileReadSql(query: Knex.QueryBuilder): string {
  return query.toSQL().sql;
}
