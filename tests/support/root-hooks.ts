import { startPostgres, stopPostgres, type PostgresServer } from './postgres.ts';

// Kept in the environment rather than a module variable so that mocha's parallel workers,
// which never run global fixtures, inherit it too.
const PG_URL_VARIABLE = 'HUB_TEST_PG_URL';

let startedHere: PostgresServer | undefined;

export function harnessPostgresUrl(): string {
  const url = process.env[PG_URL_VARIABLE];
  if (!url) {
    throw new Error(
      `${PG_URL_VARIABLE} is not set: run the tests through mocha with tests/support/root-hooks.ts in .mocharc.json "require", ` +
        `or point ${PG_URL_VARIABLE} at a PostgreSQL server whose user may create databases.`,
    );
  }
  return url;
}

export async function mochaGlobalSetup(): Promise<void> {
  if (process.env[PG_URL_VARIABLE]) return;
  startedHere = await startPostgres();
  process.env[PG_URL_VARIABLE] = startedHere.url;
}

// Only a server this run started is stopped; one given through the environment belongs to someone else.
export async function mochaGlobalTeardown(): Promise<void> {
  if (!startedHere) return;
  const server = startedHere;
  startedHere = undefined;
  delete process.env[PG_URL_VARIABLE];
  await stopPostgres(server);
}
