import { mkdirSync } from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { HubError } from './core/errors.ts';

export type DialectName = 'sqlite' | 'postgres' | 'mssql';

export interface Warehouse {
  knex: Knex;
  dialect: DialectName;
  /** The URL without its password, for logs and pages. */
  displayUrl: string;
}

const PG_DATE_OID = 1082;
// A DATE is a calendar day, not an instant: keep it as 'YYYY-MM-DD' instead of a local-midnight Date.
pg.types.setTypeParser(PG_DATE_OID, (value: string) => value);

interface SqliteConnection {
  pragma(sql: string): unknown;
  prepare(sql: string): unknown;
}

const PREPARED_CACHE_SIZE = 500;

/**
 * knex prepares every statement anew on better-sqlite3; an API request runs the same few
 * statements again and again, and preparing them cost more than running them. Statements are
 * reusable, so the connection keeps the most recent ones by SQL text.
 */
function cachePreparedStatements(conn: SqliteConnection): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (cache.size >= PREPARED_CACHE_SIZE) cache.delete(cache.keys().next().value!);
    } else {
      cache.delete(sql);
    }
    cache.set(sql, statement);
    return statement;
  };
}

export function buildKnexConfig(url: string): { config: Knex.Config; dialect: DialectName } {
  if (url.startsWith('sqlite:')) {
    const filename = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (filename === '')
      throw new HubError(
        'invalid_database_url',
        400,
        'sqlite: URL needs a file path, e.g. sqlite:./data/hub.sqlite',
      );
    return {
      dialect: 'sqlite',
      config: {
        client: 'better-sqlite3',
        connection: { filename },
        useNullAsDefault: true,
        pool: {
          min: 1,
          max: 1,
          afterCreate(conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) {
            // WAL lets readers go on while a load writes; busy_timeout lets a second hub process wait its turn.
            conn.pragma('journal_mode = WAL');
            conn.pragma('synchronous = NORMAL');
            conn.pragma('busy_timeout = 15000');
            conn.pragma('cache_size = -16384');
            cachePreparedStatements(conn);
            done(null, conn);
          },
        },
      },
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

/**
 * knex prints a failed connection attempt with its stack before rejecting with the same error;
 * the caller reports that error (`hub: cannot ...`), so the stack is not printed twice.
 */
const knexLog = {
  warn(message: string) {
    if (!message.startsWith('Acquire connection error')) console.warn(message);
  },
};

export function openWarehouse(url: string): Warehouse {
  const { config, dialect } = buildKnexConfig(url);
  if (dialect === 'sqlite') {
    const filename = (config.connection as { filename: string }).filename;
    if (filename !== ':memory:') mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
  }
  return { knex: knexFactory({ ...config, log: knexLog }), dialect, displayUrl: redactUrl(url) };
}

export async function closeWarehouse(warehouse: Warehouse): Promise<void> {
  await warehouse.knex.destroy();
}
