import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { HubError } from './core/errors.ts';

export type DialectName = 'sqlite' | 'postgres' | 'mssql';

export interface Warehouse {
  /** Writes, and reads that must see the caller's own transaction. */
  knex: Knex;
  /**
   * Reads that must not queue behind a write: on SQLite, connections of their own (WAL lets
   * them read the last commit while a load holds the write side); elsewhere the same pool,
   * whose connections already read beside a writer.
   */
  reader: Knex;
  dialect: DialectName;
  /** The URL without its password, for logs and pages. */
  displayUrl: string;
}

const PG_DATE_OID = 1082;
// A DATE is a calendar day, not an instant: keep it as 'YYYY-MM-DD' instead of a local-midnight Date.
pg.types.setTypeParser(PG_DATE_OID, (value: string) => value);

interface SqliteConnection {
  pragma(sql: string): unknown;
  prepare(sql: string): CachedStatement;
}

/** The parts of a better-sqlite3 statement that change how it hands out results. */
interface CachedStatement {
  readonly reader: boolean;
  raw(toggle: boolean): unknown;
  pluck(toggle: boolean): unknown;
  expand(toggle: boolean): unknown;
  safeIntegers(toggle: boolean): unknown;
}

const PREPARED_CACHE_SIZE = 500;
/** SQLite readers beside the one writer; better-sqlite3 is synchronous, so more would only queue on the event loop. */
const SQLITE_READERS = 4;

/** Where knex's own messages go, instead of the console. */
export type DriverLog = (message: string) => void;

export interface OpenOptions {
  /**
   * knex writes pool and connection warnings (with stacks) to the console by default; the hub
   * hands them to its logger instead, one line each. The error itself still reaches the caller.
   */
  log?: DriverLog;
  /**
   * For commands that only read: a SQLite file must already exist (a mistyped path is an
   * error, not a new empty warehouse) and is opened read-only.
   */
  readOnly?: boolean;
}

/**
 * knex prepares every statement anew on better-sqlite3; an API request runs the same few
 * statements again and again, and preparing them cost more than running them. Statements are
 * reusable, so the connection keeps the most recent ones by SQL text.
 *
 * A statement comes back from the cache as `prepare` makes it, with rows as objects and numbers
 * as numbers: whoever had it before may have switched it to values (`pluck`), arrays (`raw`) or
 * BigInts. Handed on switched, `PRAGMA busy_timeout` read by one caller with `pluck` gave knex a
 * bare number, the write transaction's wait was then set back to `undefined`, which SQLite
 * takes for 0, and from then on the writer's connection failed at once with "database is locked"
 * wherever it met another writer (a full load beside a serving hub, now and then).
 */
function cachePreparedStatements(conn: SqliteConnection): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, CachedStatement>();
  conn.prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (cache.size >= PREPARED_CACHE_SIZE) cache.delete(cache.keys().next().value!);
    } else {
      cache.delete(sql);
      asPrepared(statement);
    }
    cache.set(sql, statement);
    return statement;
  };
}

function asPrepared(statement: CachedStatement): void {
  statement.safeIntegers(false);
  // Only a statement that returns rows has result modes; the others refuse the calls.
  if (!statement.reader) return;
  statement.raw(false);
  statement.pluck(false);
  statement.expand(false);
}

export function parseSqliteFilename(url: string): string {
  const filename = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
  if (filename === '')
    throw new HubError(
      'invalid_database_url',
      400,
      'sqlite: URL needs a file path, e.g. sqlite:./data/hub.sqlite',
    );
  return filename;
}

type SqliteRole = 'writer' | 'reader' | 'read-only';

/**
 * Every connection that writes the warehouse file, the bulk-load worker's included: WAL lets
 * readers go on while a load writes; busy_timeout lets a second writer wait its turn.
 */
export const SQLITE_WRITER_PRAGMAS: readonly string[] = [
  'journal_mode = WAL',
  'synchronous = NORMAL',
  'busy_timeout = 15000',
  'cache_size = -16384',
];

/**
 * The page cache of a connection writing a full load, in KiB (the hub's usual one is 16 MiB). A
 * full load appends to a table without indexes, then builds its indexes by sorting and inserts
 * the person key in index order: none of it rereads pages, and SQLite's sorter works in pieces
 * the size of the cache. Measured at 200,000 and 1,000,000 persons, the loads took no longer
 * (the index builds a little less) and the process held 11 to 24 MB less.
 */
export const SQLITE_FULL_LOAD_CACHE_KIB = 4096;

const SQLITE_READER_PRAGMAS: readonly string[] = [
  'query_only = ON',
  'busy_timeout = 15000',
  'cache_size = -16384',
];

function buildSqliteConfig(filename: string, role: SqliteRole): Knex.Config {
  return {
    client: 'better-sqlite3',
    connection: { filename, options: { readonly: role === 'read-only' } },
    useNullAsDefault: true,
    pool: {
      min: role === 'reader' ? 0 : 1,
      max: role === 'reader' ? SQLITE_READERS : 1,
      afterCreate(conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) {
        for (const pragma of role === 'writer' ? SQLITE_WRITER_PRAGMAS : SQLITE_READER_PRAGMAS)
          conn.pragma(pragma);
        cachePreparedStatements(conn);
        done(null, conn);
      },
    },
  };
}

export function buildKnexConfig(
  url: string,
  options: OpenOptions = {},
): { config: Knex.Config; dialect: DialectName } {
  if (url.startsWith('sqlite:')) {
    return {
      dialect: 'sqlite',
      config: buildSqliteConfig(parseSqliteFilename(url), options.readOnly === true ? 'read-only' : 'writer'),
    };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    return { dialect: 'postgres', config: { client: 'pg', connection: url, pool: { min: 0, max: 10 } } };
  }
  if (url.startsWith('mssql://')) {
    return {
      dialect: 'mssql',
      config: { client: 'mssql', connection: parseMssqlUrl(url), pool: { min: 0, max: 10 } },
    };
  }
  throw new HubError(
    'invalid_database_url',
    400,
    `unsupported database URL ${JSON.stringify(redactUrl(url))}: use sqlite:PATH, postgres://... or mssql://...`,
  );
}

function parseMssqlUrl(url: string): Knex.MsSqlConnectionConfig {
  const u = new URL(url);
  return {
    server: u.hostname,
    port: u.port === '' ? 1433 : Number(u.port),
    userName: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.replace(/^\//, '') || 'master',
    options: {
      encrypt: u.searchParams.get('encrypt') !== 'false',
      trustServerCertificate: u.searchParams.get('trustServerCertificate') === 'true',
    },
  };
}

export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

function buildKnexLog(log: DriverLog | undefined): Knex.Config['log'] {
  const firstLine = (message: unknown) =>
    String(message instanceof Error ? message.message : message).split('\n')[0]!;
  const write = log ?? (() => undefined);
  const forward = (message: unknown) => write(firstLine(message));
  return { warn: forward, error: forward, deprecate: forward, debug: forward };
}

export function openWarehouse(url: string, options: OpenOptions = {}): Warehouse {
  const built = buildKnexConfig(url, options);
  const dialect = built.dialect;
  const config: Knex.Config = { ...built.config, log: buildKnexLog(options.log) };
  const displayUrl = redactUrl(url);
  if (dialect !== 'sqlite') {
    const knex = knexFactory(config);
    return { knex, reader: knex, dialect, displayUrl };
  }
  const filename = parseSqliteFilename(url);
  const memory = filename === ':memory:';
  if (options.readOnly === true && !memory && !existsSync(filename)) {
    throw new HubError(
      'no_warehouse',
      404,
      `no warehouse at ${filename}: check --db or HUB_DB (hub migrate creates one)`,
    );
  }
  if (!memory && options.readOnly !== true)
    mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
  const knex = knexFactory(config);
  // An in-memory database is private to its connection, and a read-only hub has no writer to step aside for.
  const reader =
    memory || options.readOnly === true
      ? knex
      : knexFactory({ ...buildSqliteConfig(filename, 'reader'), log: config.log });
  return { knex, reader, dialect, displayUrl };
}

export async function closeWarehouse(warehouse: Warehouse): Promise<void> {
  if (warehouse.reader !== warehouse.knex) await warehouse.reader.destroy();
  await warehouse.knex.destroy();
}

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ESOCKET',
  'ELOGIN',
  '28P01', // PostgreSQL: password authentication failed
  '28000', // PostgreSQL: no such role / not allowed
  '3D000', // PostgreSQL: database does not exist
  '57P01', // PostgreSQL: terminated by an administrator
  '57P03', // PostgreSQL: cannot connect now (starting or shutting down)
  'SQLITE_CANTOPEN',
  'SQLITE_NOTADB',
  'SQLITE_CORRUPT',
  'SQLITE_READONLY',
]);

const driverCode = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

/**
 * The one-line reason when `err` means the warehouse cannot be reached or opened, else null.
 * Drivers throw these in many shapes (Node's AggregateError for every address of localhost,
 * knex's pool timeouts), and none of them belongs on a console with its stack.
 */
export function describeConnectionError(err: unknown): string | null {
  if (err instanceof AggregateError && err.errors.length > 0) return describeConnectionError(err.errors[0]);
  const message = err instanceof Error ? err.message.split('\n')[0]!.trim() : '';
  const code = driverCode(err);
  if (code !== undefined && CONNECTION_ERROR_CODES.has(code)) return message === '' ? code : message;
  if (
    err instanceof Error &&
    /^(Knex: Timeout acquiring a connection|Unable to acquire a connection)/.test(message)
  ) {
    return 'no connection to the warehouse could be had in time';
  }
  return null;
}
