import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { validId, writeDefinition } from '../support/registry-fixture.ts';
import { runHubCli, startHubCli, type RunningHubCli } from '../support/run-hub-cli.ts';
import { openTestContext } from '../support/hub-context.ts';
import { findRunProcesses, isRunning, waitUntilEnded } from '../support/process-tree.ts';
import { createPortalUser, signInAt } from '../support/portal-client.ts';
import { platesDefinition, startGatedRegistry } from '../support/gated-registry.ts';
import { waitFor } from '../support/wait-for.ts';
import { PLATES_DONE, PLATES_MIDWAY, standingOf, type RunProgressAnswer } from '../support/run-progress.ts';
import { generate } from 'otplib';
import { closeContext } from '../../server/context.ts';
import { createClient, disableClient, type ClientCredentials } from '../../server/services/client-service.ts';

const DAILY_LIMIT = 6;

interface Answer {
  status: number;
  body: string;
}

/** One request on a connection of its own, so node's cluster hands each one to the next worker. */
function callOnNewConnection(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { ...headers, connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const answersLogged = (hub: RunningHubCli, route: string) =>
  hub.log().filter((l) => l.msg === 'answered' && l.route === route);

/** Processes whose command line names this path: a hub's primary and its workers all carry the --db argument. */
async function listProcessesNaming(text: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)('ps', ['-eo', 'pid,args']);
  return stdout.split('\n').filter((line) => line.includes(text) && !line.includes(' ps -eo'));
}

describeEachDatabase('hub start --workers: several processes serve one port', (db) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let hub: RunningHubCli;
  let token: string;
  let workerPids: number[];

  /** A bearer token for the client, asked of the running hub. */
  const tokenFor = async (credentials: ClientCredentials) => {
    const res = await fetch(`${hub.url}/api/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'client_credentials', ...credentials }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { access_token: string }).access_token;
  };

  before(async function () {
    this.timeout(240_000);
    dir = await createTempDir('hub-workers-');
    await writeDefinition(path.join(dir, 'connectors'), 'veh-vehicles', {
      name: 'veh-vehicles',
      entity: 'VEH',
      source: { kind: 'csv', path: 'vehicles.csv' },
      target: { table: 'veh_vehicles' },
      columns: { national_id: { required: true } },
    });
    env = { HUB_DATA_DIR: dir, HUB_DEMO: 'off' };
    const migrated = await runHubCli(['migrate', '--db', db.url()], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    const created = await runHubCli(
      ['clients', 'create', 'VEH', '--rate-per-day', String(DAILY_LIMIT), '--db', db.url()],
      env,
    );
    assert.equal(created.code, 0, created.stderr);
    const credentials = JSON.parse(created.stdout) as ClientCredentials;
    const probe = await listenOnFreePort();
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    hub = await startHubCli(['start', '--workers', '2', '--port', String(port), '--db', db.url()], {
      ...env,
      LOG_LEVEL: 'debug',
    });
    const listening = await hub.waitForLog((l) => l.msg === 'hub workers listening');
    workerPids = (listening.workers as Array<{ worker_pid: number }>).map((w) => w.worker_pid);
    token = await tokenFor(credentials);
  });

  after(async () => {
    await hub?.stop('SIGKILL');
    for (const pid of workerPids ?? []) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('starts two worker processes beside the primary, and both answer requests', async () => {
    assert.equal(workerPids.length, 2);
    assert.equal(new Set([...workerPids, hub.child.pid]).size, 3);
    assert.match(hub.stdout(), / \(2 worker processes\)\n/);
    for (let i = 0; i < 6; i++) assert.equal((await callOnNewConnection(`${hub.url}/healthz`)).status, 200);
    const pids = new Set(answersLogged(hub, '/healthz').map((l) => l.pid));
    assert.deepEqual([...pids].sort(), [...workerPids].sort());
  });

  it("refuses a client past its daily limit with 429 whichever worker answers: the count is the hub's, not a process's", async () => {
    const auth = { authorization: `Bearer ${token}` };
    const statuses: number[] = [];
    for (let i = 0; i < DAILY_LIMIT; i++)
      statuses.push((await callOnNewConnection(`${hub.url}/api/v1/queries`, auth)).status);
    assert.deepEqual(statuses, Array<number>(DAILY_LIMIT).fill(200));
    // Keep calling until both workers have refused at least once (round robin makes it two calls).
    const refusedBy = new Set<unknown>();
    for (let i = 0; i < 12 && refusedBy.size < 2; i++) {
      const answer = await callOnNewConnection(`${hub.url}/api/v1/queries`, auth);
      assert.equal(answer.status, 429, answer.body);
      assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'rate_limited');
      await hub
        .waitForLog(
          (l) =>
            l.msg === 'answered' &&
            l.route === '/api/v1/queries' &&
            l.status === 429 &&
            !refusedBy.has(l.pid),
          2_000,
        )
        .then(
          (l) => refusedBy.add(l.pid),
          () => undefined,
        );
    }
    assert.deepEqual([...refusedBy].sort(), [...workerPids].sort());
    const served = answersLogged(hub, '/api/v1/queries').filter((l) => l.status === 200);
    assert.equal(served.length, DAILY_LIMIT);
    assert.equal(new Set(served.map((l) => l.pid)).size, 2, 'both workers served calls within the limit');
  });

  it('another process creates and disables clients while both workers are busy, and a disabled client is refused on its next request', async () => {
    const other = openTestContext(db.url(), dir);
    const unlimited = { ratePerMinute: 1_000_000_000, ratePerDay: 1_000_000_000 };
    const list = async (bearer: string) =>
      (await fetch(`${hub.url}/api/v1/queries`, { headers: { authorization: `Bearer ${bearer}` } })).status;
    // Other callers keep both workers reading, so a request always arrives amid reads in flight.
    const newClient = () => createClient(other, { entity: 'VEH', ...unlimited }, 'test');
    const busyToken = await tokenFor(await newClient());
    let busy = true;
    const busyStatuses: number[] = [];
    const loops = Array.from({ length: 4 }, async () => {
      while (busy) busyStatuses.push(await list(busyToken));
    });
    try {
      for (let round = 0; round < 20; round++) {
        const credentials = await newClient();
        const bearer = await tokenFor(credentials);
        assert.equal(await list(bearer), 200, `round ${round}`);
        await disableClient(other, credentials.client_id, 'test');
        assert.equal(await list(bearer), 401, `round ${round}: answered after the client was disabled`);
      }
    } finally {
      busy = false;
      await Promise.all(loops);
      await closeContext(other);
    }
    assert.deepEqual([...new Set(busyStatuses)], [200]);
  });

  it('a connector run and an audit verification from the command line succeed while both workers are busy', async () => {
    const vehicles = (ids: number[]) =>
      writeFile(
        path.join(dir, 'connectors', 'vehicles.csv'),
        ['national_id', ...ids.map((n) => validId(n))].join('\n') + '\n',
      );
    const credentials = await runHubCli(
      [
        'clients',
        'create',
        'VEH',
        '--rate-per-day',
        '1000000000',
        '--rate-per-minute',
        '1000000000',
        '--db',
        db.url(),
      ],
      env,
    );
    assert.equal(credentials.code, 0, credentials.stderr);
    const bearer = await tokenFor(JSON.parse(credentials.stdout) as ClientCredentials);
    // Every answered request commits its audit row: the warehouse is written all the time.
    let busy = true;
    const statuses: number[] = [];
    const loops = Array.from({ length: 4 }, async () => {
      while (busy)
        statuses.push(
          (await fetch(`${hub.url}/api/v1/queries`, { headers: { authorization: `Bearer ${bearer}` } }))
            .status,
        );
    });
    try {
      for (const ids of [
        [1, 2, 3],
        [2, 3, 4, 5],
      ]) {
        await vehicles(ids);
        const run = await runHubCli(['connectors', 'run', 'veh-vehicles', '--db', db.url()], env);
        assert.equal(run.code, 0, run.stdout + run.stderr);
        const verified = await runHubCli(['audit', 'verify', '--db', db.url()], env);
        assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      }
    } finally {
      busy = false;
      await Promise.all(loops);
    }
    assert.ok(statuses.length > 20);
    assert.deepEqual([...new Set(statuses)], [200]);
    const other = openTestContext(db.url(), dir);
    try {
      const loaded = await other.knex('veh_vehicles').orderBy('national_id').pluck('national_id');
      assert.deepEqual(loaded, [2, 3, 4, 5].map((n) => validId(n)).sort());
    } finally {
      await closeContext(other);
    }
  });

  it("a portal user's Run now runs the load in a run process of the worker that took it, and both workers show its progress", async () => {
    const registry = await startGatedRegistry();
    const other = openTestContext(db.url(), dir);
    try {
      await writeDefinition(path.join(dir, 'connectors'), 'veh-plates', platesDefinition(registry.url));
      const user = await createPortalUser({ ctx: other }, 'workers.operator', 'VEH', 'super-admin');
      // The hub keeps the real clock here: the code is the one an authenticator shows now.
      const operator = await signInAt(hub.url, user, () => generate({ secret: user.secret }));

      registry.hold('2');
      await operator.get('/settings/connectors/veh-plates');
      const ran = await operator.post('/settings/connectors/veh-plates/run', { full: 'yes' });
      assert.equal(ran.status, 303, ran.text);
      const runPage = ran.location ?? '';
      assert.match(runPage, /^\/settings\/connectors\/veh-plates\/runs\/\d+$/);

      // Polls on connections of their own, which node's cluster hands to each worker in turn:
      // whichever worker answers shows the run's progress, not only the one running it.
      const progressUrl = `${hub.url}${runPage}/progress.json`;
      const session = { cookie: operator.cookieHeader() };
      const poll = async () => {
        const answer = await callOnNewConnection(progressUrl, session);
        assert.equal(answer.status, 200, answer.body);
        return JSON.parse(answer.body) as RunProgressAnswer;
      };
      await waitFor('the run reads its first page', poll, (p) => p.read >= 2);
      const route = '/settings/connectors/veh-plates';
      const loggedBefore = answersLogged(hub, route).length;
      for (let i = 0; i < 6; i++) {
        const progress = await poll();
        assert.deepEqual(standingOf(progress), PLATES_MIDWAY, `poll ${i}`);
      }
      const answeredBy = await waitFor(
        'both workers answered the polls',
        () =>
          Promise.resolve(
            new Set(
              answersLogged(hub, route)
                .slice(loggedBefore)
                .map((l) => l.pid),
            ),
          ),
        (pids) => pids.size === 2,
      );
      assert.deepEqual([...answeredBy].sort(), [...workerPids].sort());

      // While the source holds its second page, the run's process is a child of one worker.
      const runProcesses = (
        await Promise.all(
          [...workerPids, hub.child.pid ?? 0].map(async (parent) =>
            (await findRunProcesses(parent)).map((pid) => ({ parent, pid })),
          ),
        )
      ).flat();
      assert.equal(runProcesses.length, 1, JSON.stringify(runProcesses));
      const [{ parent, pid: runPid }] = runProcesses as [{ parent: number; pid: number }];
      assert.ok(workerPids.includes(parent), `the run's process is a child of ${parent}, not of a worker`);

      registry.release('2');
      const done = await waitFor(
        'the run finishes',
        async () => JSON.parse((await operator.get(`${runPage}/progress.json`)).text) as RunProgressAnswer,
        (p) => p.finished,
      );
      assert.deepEqual(standingOf(done), PLATES_DONE);
      await waitUntilEnded(runPid);
      const run = await other
        .knex('hub_connector_runs')
        .where({ connector: 'veh-plates' })
        .first<{ trigger: string; status: string }>('trigger', 'status');
      assert.deepEqual({ ...run }, { trigger: 'manual', status: 'succeeded' });
      const plates = await other.knex('veh_plates').count({ n: '*' }).first<{ n: number | string }>();
      assert.equal(Number(plates?.n), 4);
    } finally {
      await closeContext(other);
      await registry.close();
    }
  });

  it('replaces a worker that dies, and logs it', async () => {
    const [victim, survivor] = workerPids as [number, number];
    process.kill(victim, 'SIGKILL');
    const exited = await hub.waitForLog((l) => l.msg === 'hub worker exited; starting another');
    assert.equal(exited.worker_pid, victim);
    assert.equal(exited.signal, 'SIGKILL');
    const replaced = await hub.waitForLog((l) => l.msg === 'hub worker replaced');
    const newcomer = replaced.worker_pid as number;
    assert.ok(isRunning(newcomer) && newcomer !== victim);
    workerPids = [survivor, newcomer];
    const before = answersLogged(hub, '/healthz').length;
    for (let i = 0; i < 6; i++) assert.equal((await callOnNewConnection(`${hub.url}/healthz`)).status, 200);
    const pids = new Set(
      answersLogged(hub, '/healthz')
        .slice(before)
        .map((l) => l.pid),
    );
    assert.deepEqual([...pids].sort(), [...workerPids].sort());
  });

  it('stops every process on SIGTERM, exit 0, with a final audit checkpoint that verifies', async () => {
    assert.equal(await hub.stop('SIGTERM'), 0);
    for (const pid of workerPids) assert.equal(isRunning(pid), false, `worker ${pid} still runs`);
    const verified = await runHubCli(['audit', 'verify', '--db', db.url()], env);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /checkpoint/);
  });
});

describe('hub start --workers: a start that cannot serve', function () {
  this.timeout(240_000);
  let dir: string;
  let busy: Server;

  before(async () => {
    dir = await createTempDir('hub-workers-fail-');
    busy = await listenOnFreePort();
  });

  after(async () => {
    busy.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a port in use: one hub: line, exit 1, and no process of it left', async () => {
    const { port } = busy.address() as AddressInfo;
    const db = `sqlite:${path.join(dir, 'busy-port.sqlite')}`;
    const result = await runHubCli(['start', '--workers', '2', '--port', String(port), '--db', db], {
      HUB_DATA_DIR: dir,
      HUB_DEMO: 'off',
      LOG_LEVEL: 'info',
    });
    assert.equal(result.code, 1, result.stderr);
    assert.deepEqual(result.stderr.trim().split('\n'), [
      `hub: cannot listen on 127.0.0.1:${port}: the port is already in use (EADDRINUSE)`,
    ]);
    assert.doesNotMatch(result.stdout, /listening|Scheduled/);
    assert.deepEqual(await listProcessesNaming(db), []);
  });

  it('--workers that is not a positive integer: a usage error, exit 2', async () => {
    for (const bad of ['0', '-1', 'two', '1.5']) {
      const result = await runHubCli(['start', '--workers', bad, '--port', '0'], { HUB_DATA_DIR: dir });
      assert.equal(result.code, 2, `--workers ${bad}: ${result.stderr}`);
      assert.match(result.stderr, /--workers must be a positive integer/);
    }
  });

  it('HUB_WORKERS that is not a number of processes: exit 1 naming the setting', async () => {
    const result = await runHubCli(['start', '--port', '0'], { HUB_DATA_DIR: dir, HUB_WORKERS: 'many' });
    assert.equal(result.code, 1);
    assert.match(result.stderr.trim(), /^hub: invalid configuration: HUB_WORKERS: /);
  });
});

async function listenOnFreePort(): Promise<Server> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}
