import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import pg from 'pg';
import { REPLICA_APPLICATION_NAME } from '../../warehouse/read-replica.ts';
import {
  callApi,
  PERSON,
  saveQueryAsSuperAdmin,
  serveAnotherHub,
  startApiHub,
  type AnotherHub,
  type ApiHub,
  type ApiResponse,
} from '../support/api-hub.ts';
import { testDatabases } from '../support/databases.ts';
import { startReplica, stopPostgres, type PostgresServer } from '../support/postgres.ts';
import { harnessPostgresUrl } from '../support/root-hooks.ts';
import { runHubCli } from '../support/run-hub-cli.ts';
import { waitFor } from '../support/wait-for.ts';

interface PersonBody {
  tables: Record<string, Array<Record<string, unknown>>>;
}

interface Health {
  status: string;
  read_replica?: { status: string; lag_ms: number | null };
}

const postgres = testDatabases.find((d) => d.name === 'postgres')!;

function onServer(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe('Read replica (HUB_DB_READ): registry reads on a streaming replica, grants on the primary [postgres]', function () {
  this.timeout(240_000);
  let replica: PostgresServer;
  let primaryDb: string;
  let replicaDb: string;
  let hub: ApiHub;
  let strict: AnotherHub;
  let token: string;
  let replayPaused = false;
  let replicaRunning = false;

  const health = async (baseUrl: string) => (await callApi(baseUrl, 'GET', '/healthz')).body as Health;
  const lookup = (baseUrl: string, id: string) => callApi(baseUrl, 'GET', `/api/v1/persons/${id}`, { token });
  const nameIn = (res: ApiResponse) => {
    assert.equal(res.status, 200, res.text);
    return (res.body as PersonBody).tables.reg_people?.[0]?.full_name;
  };
  const setReplay = async (paused: boolean) => {
    await query(replica.url, paused ? 'select pg_wal_replay_pause()' : 'select pg_wal_replay_resume()');
    replayPaused = paused;
  };
  const renameOnPrimary = (id: string, name: string) =>
    query(primaryDb, 'update reg_people set full_name = $1 where national_id = $2', [name, id]);

  before(async () => {
    replica = await startReplica(harnessPostgresUrl());
    replicaRunning = true;
    primaryDb = await postgres.createUrl();
    const database = new URL(primaryDb).pathname.slice(1);
    replicaDb = onServer(replica.url, database);
    await waitFor(
      'the new database on the replica',
      () => query(replica.url, 'select 1 from pg_database where datname = $1', [database]),
      (rows) => rows.length === 1,
    );
    // This hub tolerates any lag, so that it keeps reading the replica while replay is paused.
    hub = await startApiHub(primaryDb, {
      env: { HUB_DB_READ: replicaDb, HUB_DB_READ_MAX_LAG_MS: '3600000' },
    });
    // This one allows a quarter of a second: a paused replica is soon too far behind for it.
    strict = await serveAnotherHub(hub, { HUB_DB_READ: replicaDb, HUB_DB_READ_MAX_LAG_MS: '250' });
    await hub.grant('VEH', 'reg_people');
    ({ token } = await hub.createCaller('VEH'));
    // The revoke test shows the replica still holding the grant: it must have replayed it first.
    await waitFor(
      'the grant replayed on the replica',
      () => query(replicaDb, "select 1 from hub_grants where entity = 'VEH' and table_name = 'reg_people'"),
      (rows) => rows.length > 0,
    );
    for (const baseUrl of [hub.baseUrl, strict.baseUrl])
      await waitFor(
        'the replica in use',
        () => health(baseUrl),
        (h) => h.read_replica?.status === 'ok',
      );
  });

  after(async () => {
    if (replayPaused && replicaRunning) await setReplay(false).catch(() => undefined);
    await strict?.close();
    await hub?.close();
    if (primaryDb) await postgres.dropUrl(primaryDb);
    if (replicaRunning) await stopPostgres(replica);
  });

  it('serves a person lookup from the replica: with replay paused, a change made on the primary is not seen', async () => {
    const before = nameIn(await lookup(hub.baseUrl, PERSON.mohammad));
    await setReplay(true);
    await renameOnPrimary(PERSON.mohammad, 'changed on the primary');
    assert.equal(nameIn(await lookup(hub.baseUrl, PERSON.mohammad)), before);
    const sessions = await query<{ n: string }>(
      replica.url,
      'select count(*) as n from pg_stat_activity where application_name = $1 and datname = $2',
      [REPLICA_APPLICATION_NAME, new URL(replicaDb).pathname.slice(1)],
    );
    assert.ok(Number(sessions[0]!.n) > 0, 'the hub holds connections to the replica');
  });

  it('serves a saved query from the replica too', async () => {
    await saveQueryAsSuperAdmin(hub, {
      name: 'replica-people',
      entity: 'VEH',
      description: 'people by national ID',
      tables: ['reg_people'],
      columns: ['reg_people.national_id', 'reg_people.full_name'],
      conditions: [{ column: 'reg_people.national_id', op: '=', param: 'id' }],
      params: { id: { type: 'string', required: true } },
      limit: 10,
    });
    const res = await callApi(hub.baseUrl, 'POST', '/api/v1/queries/replica-people', {
      token,
      json: { params: { id: PERSON.mohammad } },
    });
    assert.equal(res.status, 200, res.text);
    const rows = (res.body as { rows: Array<Record<string, unknown>> }).rows;
    assert.equal(rows.length, 1);
    assert.notEqual(rows[0]!['reg_people.full_name'], 'changed on the primary');
  });

  it('a hub whose lag limit the paused replica exceeds reads from the primary, and says so on /healthz', async () => {
    const seen = await waitFor(
      'the strict hub to leave the replica',
      () => health(strict.baseUrl),
      (h) => h.read_replica?.status === 'lagging',
    );
    assert.equal(seen.status, 'ok');
    assert.ok((seen.read_replica?.lag_ms ?? 0) > 250);
    assert.equal(nameIn(await lookup(strict.baseUrl, PERSON.mohammad)), 'changed on the primary');
  });

  it('a revoke issued on the primary counts from the next request while the replica has not replayed it', async () => {
    assert.equal(replayPaused, true);
    assert.notEqual(nameIn(await lookup(hub.baseUrl, PERSON.fatima)), undefined);
    await hub.revoke('VEH', 'reg_people');
    // The replica still holds the grant: the decision can only have come from the primary.
    const onReplica = await query(
      replicaDb,
      "select 1 from hub_grants where entity = 'VEH' and table_name = 'reg_people'",
    );
    assert.equal(onReplica.length > 0, true);
    const after = await lookup(hub.baseUrl, PERSON.fatima);
    assert.ok(after.status === 404 || !('reg_people' in (after.body as PersonBody).tables), after.text);
    const run = await callApi(hub.baseUrl, 'POST', '/api/v1/queries/replica-people', {
      token,
      json: { params: { id: PERSON.fatima } },
    });
    assert.equal(run.status, 403, run.text);
    assert.equal((run.body as { error: { code: string } }).error.code, 'table_not_granted');
  });

  it("once replay resumes, the replica serves again and shows the primary's change", async () => {
    await setReplay(false);
    await hub.grant('VEH', 'reg_people');
    await waitFor(
      'the strict hub back on the replica',
      () => health(strict.baseUrl),
      (h) => h.read_replica?.status === 'ok',
    );
    assert.equal(nameIn(await lookup(hub.baseUrl, PERSON.mohammad)), 'changed on the primary');
  });

  it('a replica that is down: reads go to the primary and /healthz reports it', async () => {
    await renameOnPrimary(PERSON.sara, 'written while the replica was down');
    replicaRunning = false;
    await stopPostgres(replica);
    for (const baseUrl of [hub.baseUrl, strict.baseUrl]) {
      const seen = await waitFor(
        'the replica reported down',
        () => health(baseUrl),
        (h) => h.read_replica?.status === 'down',
      );
      assert.equal(seen.status, 'ok');
      assert.equal(nameIn(await lookup(baseUrl, PERSON.sara)), 'written while the replica was down');
    }
  });
});

describe('Read replica configuration: bad settings stop the start with one line', function () {
  this.timeout(120_000);

  const cases: Array<[string, NodeJS.ProcessEnv, RegExp]> = [
    [
      'a replica URL that is not PostgreSQL',
      { HUB_DB: 'postgres://hub@127.0.0.1:1/hub', HUB_DB_READ: 'mysql://hub@127.0.0.1/hub' },
      /^hub: invalid configuration: HUB_DB_READ: must be a postgres:\/\/ URL of a streaming replica$/,
    ],
    [
      'a replica beside a SQLite warehouse',
      { HUB_DB: 'sqlite:./never-created.sqlite', HUB_DB_READ: 'postgres://hub@127.0.0.1:1/hub' },
      /^hub: invalid configuration: HUB_DB_READ: a read replica needs a PostgreSQL warehouse \(HUB_DB\)$/,
    ],
    [
      'a lag limit that is not a number of milliseconds',
      {
        HUB_DB: 'postgres://hub@127.0.0.1:1/hub',
        HUB_DB_READ: 'postgres://hub@127.0.0.1:1/hub',
        HUB_DB_READ_MAX_LAG_MS: 'soon',
      },
      /^hub: invalid configuration: HUB_DB_READ_MAX_LAG_MS: /,
    ],
  ];
  for (const [what, env, message] of cases) {
    it(what, async () => {
      const result = await runHubCli(['start', '--port', '0', '--workers', '1'], {
        HUB_DATA_DIR: tmpdir(),
        ...env,
      });
      assert.equal(result.code, 1, result.stderr);
      assert.deepEqual(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr.trim(), message);
    });
  }
});
