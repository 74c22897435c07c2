import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import pg from 'pg';
import { harnessPostgresUrl } from './root-hooks.ts';

export type DatabaseName = 'sqlite' | 'postgres';

export interface TestDatabase {
  name: DatabaseName;
  createUrl(): Promise<string>;
  dropUrl(url: string): Promise<void>;
}

export interface SuiteDatabase {
  name: DatabaseName;
  /** The current suite's database URL; only valid inside hooks and tests. */
  url: () => string;
}

const SQLITE_SCHEME = 'sqlite:';
const SQLITE_DIR_PREFIX = 'hub-sqlite-';
const PG_DATABASE_PATTERN = /^hub_test_[0-9a-f]+$/;

/** A fresh folder under the OS temp folder; the caller removes it. */
export function createTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

// dropUrl deletes folders and databases, so it refuses anything this module did not create.
function refuse(url: string): never {
  throw new Error(`Refusing to drop ${url}: it is not a test database created by tests/support/databases.ts`);
}

const sqlite: TestDatabase = {
  name: 'sqlite',
  async createUrl() {
    const dir = await createTempDir(SQLITE_DIR_PREFIX);
    return `${SQLITE_SCHEME}${join(dir, 'hub.sqlite')}`;
  },
  async dropUrl(url) {
    const dir = dirname(url.slice(SQLITE_SCHEME.length));
    if (!url.startsWith(SQLITE_SCHEME) || !basename(dir).startsWith(SQLITE_DIR_PREFIX)) refuse(url);
    await rm(dir, { recursive: true, force: true });
  },
};

async function onHarnessServer(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: harnessPostgresUrl() });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

const postgres: TestDatabase = {
  name: 'postgres',
  async createUrl() {
    const database = `hub_test_${randomBytes(6).toString('hex')}`;
    await onHarnessServer(`CREATE DATABASE ${database}`);
    return withDatabase(harnessPostgresUrl(), database);
  },
  async dropUrl(url) {
    const database = decodeURIComponent(new URL(url).pathname.slice(1));
    if (!PG_DATABASE_PATTERN.test(database)) refuse(url);
    // FORCE: a test that forgot to close its pool must not make the drop fail.
    await onHarnessServer(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  },
};

export const testDatabases: TestDatabase[] = [sqlite, postgres];

/** Declares `title [sqlite]` and `title [postgres]`, each with a fresh database for the whole suite. */
export function describeEachDatabase(title: string, body: (db: SuiteDatabase) => void): void {
  for (const database of testDatabases) {
    describe(`${title} [${database.name}]`, function () {
      let current: string | undefined;
      const url = (): string => {
        if (current === undefined)
          throw new Error(`No ${database.name} database yet: call url() inside hooks or tests`);
        return current;
      };

      before(async function () {
        current = await database.createUrl();
      });
      body({ name: database.name, url });
      // Registered after the body so that the body's own after hooks (closing connections) run first.
      after(async function () {
        if (current === undefined) return;
        const dropping = current;
        current = undefined;
        await database.dropUrl(dropping);
      });
    });
  }
}
