/**
 * npm run bench:api [-- --persons N] [-- --duration S] [-- --cpu-prof DIR] [-- --only persons] [-- --hub-workers N] [-- --rounds N]
 * Loads the demo (default 1,000,000 persons) into a SQLite warehouse, then puts the hub's person
 * lookup (10 connections, then 50), batch lookup (10 connections) and a saved-query endpoint (50
 * connections) under load (autocannon, loopback) next to a bare express server making the same
 * reads on the same file, and prints one markdown table. `--only persons` measures the person
 * endpoints and stops. The hub runs as it ships: tokens, grants, rate limits and the audit log all on.
 * Then the person lookup again, in a hub that runs the CSPD personal-info connector in its own
 * process (as the scheduler does): with no load, during a full load, and during an incremental
 * load after 1% of the citizens changed, p99 next to p99, in a second table.
 * --hub-workers N starts the compared hub with `--workers N` (default: one per core, as `hub start` runs).
 * --rounds N alternates each endpoint's hub and bare runs N times (one table row a round), since
 * the first round after the hub starts runs on cold code and caches.
 * --cpu-prof DIR writes V8 CPU profiles of the hub process into DIR/hub and of the bare server into DIR/bare.
 */
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import type { Result } from 'autocannon';
import { verifyAuditChain } from '../../warehouse/audit/verify-audit-chain.ts';
import { closeWarehouse, openWarehouse } from '../../warehouse/db.ts';
import { prepareApiFixture, type ApiFixture } from './api-fixture.ts';
import { CONNECTIONS, requestsPerSecond, rotate, runLoad, successes, type LoadTarget } from './api-load.ts';
import { BATCH_SIZE, BORN_BEFORE_DATES, PAGE_SIZE, QUERY_NAME } from './api-shape.ts';
import { startChildServer, type ChildServer } from './child-server.ts';
import { readProcessTreeCpuSeconds } from './process-cpu.ts';
import { measureWorkerCounts, printWorkersTable } from './workers-throughput.ts';
import { measureLookupDuringLoads, printDuringLoadTable, startHubWithLoads } from './lookup-during-load.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WARM_UP_SECONDS = 2;
const START_TIMEOUT_MS = 300_000;
/** Connections for the person endpoints: a consuming system's worker pool, not a flood. */
const PERSON_CONNECTIONS = 10;

interface Options {
  persons: number;
  /** `--workers` of the hub compared with the bare server. */
  hubWorkers: number;
  duration: number;
  cpuProfDir: string | null;
  onlyPersons: boolean;
  /** Times each endpoint's hub and bare runs alternate: the first round after a start runs on cold code and caches. */
  rounds: number;
}

interface Side {
  url: string;
  /** The server's process, whose CPU (with its workers') each run measures. */
  pid: number;
  /** Headers for every request: a fresh bearer token for the hub, none for the bare server. */
  headers(): Promise<Record<string, string>>;
}

interface Endpoint {
  label: string;
  connections: number;
  /** The hub's least share of the bare server's requests per second, and its greatest p99 where it has one. */
  targets: { ratio: number; p99Ms?: number };
  target(side: 'hub' | 'bare', url: string, headers: Record<string, string>): LoadTarget;
}

/** A timed run, and the server's CPU milliseconds per completed request in it (null without /proc). */
interface Run {
  result: Result;
  cpuMsPerRequest: number | null;
}

interface Measured {
  endpoint: Endpoint;
  round: number;
  hub: Run;
  bare: Run;
}

function readNumber(argv: string[], flag: string, fallback: number): number {
  const i = argv.indexOf(flag);
  const n = i === -1 ? fallback : Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer`);
  return n;
}

function readOptions(argv: string[]): Options {
  const prof = argv.indexOf('--cpu-prof');
  return {
    persons: readNumber(argv, '--persons', 1_000_000),
    hubWorkers: readNumber(argv, '--hub-workers', availableParallelism()),
    duration: readNumber(argv, '--duration', 10),
    cpuProfDir: prof === -1 ? null : path.resolve(argv[prof + 1] ?? 'cpu-profiles'),
    onlyPersons: argv.includes('--only') && argv[argv.indexOf('--only') + 1] === 'persons',
    rounds: readNumber(argv, '--rounds', 1),
  };
}

/** Undoes what was set up, last first, once, whether the run ends, fails or is interrupted. */
class Cleanup {
  private readonly steps: Array<() => Promise<void>> = [];
  private running: Promise<void> | null = null;

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse())
        await step().catch((err: unknown) => console.error(`cleanup: ${String(err)}`));
    })();
    return this.running;
  }
}

/** Node refuses --cpu-prof in NODE_OPTIONS: it goes on the command line, one folder per server. */
const profileArgs = (options: Options, server: 'hub' | 'bare'): string[] =>
  options.cpuProfDir === null
    ? []
    : ['--cpu-prof', `--cpu-prof-dir=${path.join(options.cpuProfDir, server)}`];

function startHub(dir: string, options: Options): Promise<ChildServer> {
  return startChildServer({
    name: 'the hub',
    args: [
      ...profileArgs(options, 'hub'),
      path.join(ROOT, 'server/cli/hub.mjs'),
      'start',
      '--port',
      '0',
      '--workers',
      String(options.hubWorkers),
    ],
    env: { ...process.env, HUB_DATA_DIR: dir, HUB_SCHEDULER: 'off', LOG_LEVEL: 'warn' },
    ready: /Registry Hub listening on (http:\/\/\S+)/,
    timeoutMs: START_TIMEOUT_MS,
  });
}

function startBare(databaseFile: string, options: Options): Promise<ChildServer> {
  return startChildServer({
    name: 'the bare server',
    args: [
      ...profileArgs(options, 'bare'),
      '--import',
      'tsx',
      path.join(ROOT, 'tests/bench/bare-server.ts'),
      databaseFile,
    ],
    env: process.env,
    ready: /Bare server listening on (http:\/\/\S+)/,
    timeoutMs: START_TIMEOUT_MS,
  });
}

async function fetchToken(hubUrl: string, fixture: ApiFixture): Promise<string> {
  const res = await fetch(`${hubUrl}/api/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'client_credentials', ...fixture.client }),
  });
  if (!res.ok) throw new Error(`POST /api/v1/token answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

function buildEndpoints(fixture: ApiFixture, options: Pick<Options, 'onlyPersons'>): Endpoint[] {
  const queryBody = (bornBefore: string) =>
    JSON.stringify({ params: { born_before: bornBefore }, page_size: PAGE_SIZE });
  const batches = Array.from({ length: Math.floor(fixture.nationalIds.length / BATCH_SIZE) }, (_, i) =>
    JSON.stringify({ national_ids: fixture.nationalIds.slice(i * BATCH_SIZE, (i + 1) * BATCH_SIZE) }),
  );
  const lookup = (connections: number, targets: Endpoint['targets']): Endpoint => ({
    label:
      connections === PERSON_CONNECTIONS
        ? 'person lookup `GET /api/v1/persons/{national_id}`'
        : `person lookup \`GET /api/v1/persons/{national_id}\` (${connections} connections)`,
    connections,
    targets,
    target: (side, url, headers) => {
      const nextId = rotate(fixture.nationalIds);
      const prefix = side === 'hub' ? '/api/v1/persons/' : '/persons/';
      return {
        url,
        method: 'GET',
        headers,
        connections,
        next: () => ({ path: `${prefix}${nextId()}` }),
      };
    },
  });
  const persons: Endpoint[] = [
    lookup(PERSON_CONNECTIONS, { ratio: 0.8, p99Ms: 10 }),
    // Busier callers: the hub's turns then gather more answers a commit, the bare server's one
    // process has no second core. The p99 target is the 10-connection row's.
    lookup(CONNECTIONS, { ratio: 0.8 }),
    {
      label: `batch lookup \`POST /api/v1/persons:batch\` (${BATCH_SIZE} IDs a call)`,
      connections: PERSON_CONNECTIONS,
      targets: { ratio: 0.8, p99Ms: 10 },
      target: (side, url, headers) => {
        const nextBatch = rotate(batches);
        const routePath = side === 'hub' ? '/api/v1/persons:batch' : '/persons:batch';
        return {
          url,
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          connections: PERSON_CONNECTIONS,
          next: () => ({ path: routePath, body: nextBatch() }),
        };
      },
    },
  ];
  if (options.onlyPersons) return persons;
  return [
    ...persons,
    {
      label: `saved query \`POST /api/v1/queries/${QUERY_NAME}\` (page of ${PAGE_SIZE})`,
      connections: CONNECTIONS,
      targets: { ratio: 0.5, p99Ms: 50 },
      target: (side, url, headers) => {
        const nextDate = rotate(BORN_BEFORE_DATES);
        const routePath = side === 'hub' ? `/api/v1/queries/${QUERY_NAME}` : '/queries/widows';
        return {
          url,
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          next: () => ({ path: routePath, body: queryBody(nextDate()) }),
        };
      },
    },
  ];
}

async function fetchJson(url: string, init: RequestInit): Promise<unknown> {
  const res = await fetch(url, init);
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

/** The comparison is only fair if both sides return the same data; one request of each, before the load. */
async function assertSameAnswers(hub: Side, bare: Side, fixture: ApiFixture): Promise<void> {
  const nid = fixture.nationalIds[0]!;
  const auth = await hub.headers();
  const hubPerson = await fetchJson(`${hub.url}/api/v1/persons/${nid}`, { headers: auth });
  const barePerson = await fetchJson(`${bare.url}/persons/${nid}`, {});
  if (!isDeepStrictEqual(hubPerson, barePerson))
    throw new Error(`person ${nid}: the hub and the bare server disagree`);
  const batch: RequestInit = {
    method: 'POST',
    body: JSON.stringify({ national_ids: fixture.nationalIds.slice(0, BATCH_SIZE) }),
  };
  const json = { 'content-type': 'application/json' };
  const hubBatch = await fetchJson(`${hub.url}/api/v1/persons:batch`, {
    ...batch,
    headers: { ...auth, ...json },
  });
  const bareBatch = await fetchJson(`${bare.url}/persons:batch`, { ...batch, headers: json });
  if (!isDeepStrictEqual(hubBatch, bareBatch)) throw new Error('batch: the hub and the bare server disagree');
  for (const bornBefore of BORN_BEFORE_DATES) {
    const body = JSON.stringify({ params: { born_before: bornBefore }, page_size: PAGE_SIZE });
    const post = (headers: Record<string, string>): RequestInit => ({
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body,
    });
    // The hub's page also carries its sealed `next` token, which the bare server has no key for.
    const { next: _token, ...hubPage } = (await fetchJson(
      `${hub.url}/api/v1/queries/${QUERY_NAME}`,
      post(auth),
    )) as Record<string, unknown>;
    const barePage = await fetchJson(`${bare.url}/queries/widows`, post({}));
    if (!isDeepStrictEqual(hubPage, barePage))
      throw new Error(`${QUERY_NAME} born_before ${bornBefore}: the hub and the bare server disagree`);
  }
}

async function measure(
  endpoint: Endpoint,
  side: 'hub' | 'bare',
  server: Side,
  seconds: number,
  hubSuccesses: number[],
): Promise<Run> {
  const target = endpoint.target(side, server.url, await server.headers());
  const warmUp = await runLoad(target, WARM_UP_SECONDS);
  const cpuBefore = readProcessTreeCpuSeconds(server.pid);
  const result = await runLoad(target, seconds);
  const cpuAfter = readProcessTreeCpuSeconds(server.pid);
  const cpuMsPerRequest =
    cpuBefore === null || cpuAfter === null || result.requests.total === 0
      ? null
      : (1000 * (cpuAfter - cpuBefore)) / result.requests.total;
  if (side === 'hub') hubSuccesses.push(successes(warmUp), successes(result));
  console.log(
    `  ${side.padEnd(4)} ${endpoint.label}: ${Math.round(requestsPerSecond(result)).toLocaleString('en')} req/s, ` +
      `p99 ${result.latency.p99} ms, non-2xx ${result.non2xx}, errors ${result.errors}, ` +
      `CPU ${formatCpu(cpuMsPerRequest)} ms a request`,
  );
  return { result, cpuMsPerRequest };
}

const formatCpu = (ms: number | null) => (ms === null ? 'n/a' : ms.toFixed(2));

/** How much of the bare server's work per request the hub's is: bare CPU per request over the hub's. */
function formatCpuShare(hub: Run, bare: Run): string {
  if (hub.cpuMsPerRequest === null || bare.cpuMsPerRequest === null) return 'n/a';
  return `${((100 * bare.cpuMsPerRequest) / hub.cpuMsPerRequest).toFixed(0)}%`;
}

const formatRate = (r: Result) => Math.round(requestsPerSecond(r)).toLocaleString('en');

function printTable(rows: Measured[], options: Options): void {
  console.log('');
  console.log(
    `${options.persons.toLocaleString('en')} persons, SQLite warehouse, loopback, autocannon (connections per row), ` +
      `${options.duration} s per run after a ${WARM_UP_SECONDS} s warm-up; hub (${options.hubWorkers} worker process${options.hubWorkers === 1 ? '' : 'es'}) with tokens, grants, rate limits and audit on`,
  );
  console.log('');
  console.log(
    '| endpoint | connections | hub req/s | bare req/s | hub / bare | hub p50 / p99 ms | bare p50 / p99 ms | CPU ms a request (hub / bare) | bare CPU / hub CPU | hub non-2xx | errors (hub / bare) |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const { endpoint, hub: hubRun, bare: bareRun } = row;
    const [hub, bare] = [hubRun.result, bareRun.result];
    const ratio = requestsPerSecond(hub) / requestsPerSecond(bare);
    console.log(
      `| ${labelOf(row, options)} | ${endpoint.connections} | ${formatRate(hub)} | ${formatRate(bare)} | ${(100 * ratio).toFixed(0)}% | ` +
        `${hub.latency.p50} / ${hub.latency.p99} | ${bare.latency.p50} / ${bare.latency.p99} | ` +
        `${formatCpu(hubRun.cpuMsPerRequest)} / ${formatCpu(bareRun.cpuMsPerRequest)} | ${formatCpuShare(hubRun, bareRun)} | ` +
        `${hub.non2xx} | ${hub.errors} / ${bare.errors} |`,
    );
  }
}

function printVerdict(rows: Measured[], options: Pick<Options, 'rounds'>): void {
  const yes = (ok: boolean) => (ok ? 'met' : 'NOT met');
  console.log('');
  for (const row of rows) {
    const { endpoint, hub: hubRun, bare: bareRun } = row;
    const [hub, bare] = [hubRun.result, bareRun.result];
    const { ratio, p99Ms } = endpoint.targets;
    console.log(
      `targets, ${labelOf(row, options)}: hub ≥ ${100 * ratio}% of bare req/s ${yes(requestsPerSecond(hub) >= ratio * requestsPerSecond(bare))}; ` +
        (p99Ms === undefined ? '' : `hub p99 < ${p99Ms} ms ${yes(hub.latency.p99 < p99Ms)}; `) +
        `zero hub non-2xx and errors ${yes(hub.non2xx + hub.errors === 0)}`,
    );
  }
}

/** Read after the hub has stopped, from the file itself: every answered API read left its audit row. */
async function reportAudit(databaseFile: string, hubSuccesses: number): Promise<void> {
  const db = new Database(databaseFile, { readonly: true });
  const counts = db
    .prepare('SELECT action, COUNT(*) AS n FROM hub_audit GROUP BY action ORDER BY n DESC')
    .all() as Array<{ action: string; n: number }>;
  db.close();
  const total = counts.reduce((sum, c) => sum + c.n, 0);
  const reads = counts
    .filter((c) => c.action === 'api.call' || c.action === 'query.run')
    .reduce((sum, c) => sum + c.n, 0);
  console.log('');
  console.log(
    `audit: ${total.toLocaleString('en')} rows in hub_audit (${counts.map((c) => `${c.action} ${c.n.toLocaleString('en')}`).join(', ')})`,
  );
  console.log(
    `audit: ${reads.toLocaleString('en')} api.call + query.run rows for ${hubSuccesses.toLocaleString('en')} 2xx responses counted by autocannon (requests still in flight when a run stops are audited but not counted)`,
  );
  const warehouse = openWarehouse(`sqlite:${databaseFile}`);
  try {
    const report = await verifyAuditChain(warehouse.knex);
    console.log(
      `audit chain: ${report.ok ? `ok, ${report.rows.toLocaleString('en')} rows verified` : `BROKEN at row ${report.brokenAt}: ${report.reason}`}`,
    );
    if (!report.ok) process.exitCode = 1;
  } finally {
    await closeWarehouse(warehouse);
  }
}

async function runEndpoints(
  hub: Side,
  bare: Side,
  fixture: ApiFixture,
  options: Options,
  hubSuccesses: number[],
): Promise<Measured[]> {
  const rows: Measured[] = [];
  for (const endpoint of buildEndpoints(fixture, options)) {
    for (let round = 1; round <= options.rounds; round++) {
      // Hub and bare runs alternate, so a noisy neighbour hurts both alike.
      const hubResult = await measure(endpoint, 'hub', hub, options.duration, hubSuccesses);
      const bareResult = await measure(endpoint, 'bare', bare, options.duration, hubSuccesses);
      rows.push({ endpoint, round, hub: hubResult, bare: bareResult });
    }
  }
  return rows;
}

/** The endpoint's label, with its round when there are several. */
const labelOf = (row: Measured, options: Pick<Options, 'rounds'>) =>
  options.rounds === 1 ? row.endpoint.label : `${row.endpoint.label}, round ${row.round}`;

async function main(cleanup: Cleanup): Promise<void> {
  const started = Date.now();
  const options = readOptions(process.argv);
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-api-bench-'));
  cleanup.add(() => rm(dir, { recursive: true, force: true }));
  const fixture = await prepareApiFixture(dir, options.persons, (line) => console.log(line));
  console.log(
    `fixture ready in ${((Date.now() - started) / 1000).toFixed(1)} s: NAF client, grants, ${QUERY_NAME}, ${fixture.nationalIds.length.toLocaleString('en')} national IDs`,
  );

  const hubServer = await startHub(dir, options);
  cleanup.add(() => hubServer.stop());
  const bareServer = await startBare(fixture.databaseFile, options);
  cleanup.add(() => bareServer.stop());
  const hub: Side = {
    url: hubServer.url,
    pid: hubServer.pid,
    headers: async () => ({ authorization: `Bearer ${await fetchToken(hubServer.url, fixture)}` }),
  };
  const bare: Side = { url: bareServer.url, pid: bareServer.pid, headers: () => Promise.resolve({}) };
  await assertSameAnswers(hub, bare, fixture);

  const hubSuccesses: number[] = [];
  const rows = await runEndpoints(hub, bare, fixture, options, hubSuccesses);
  await hubServer.stop();
  await bareServer.stop();
  if (options.onlyPersons) {
    printTable(rows, options);
    printVerdict(rows, options);
    await reportAudit(
      fixture.databaseFile,
      hubSuccesses.reduce((a, b) => a + b, 0),
    );
    return;
  }

  console.log('the person lookup with 1 and 2 hub worker processes:');
  const byWorkers = await measureWorkerCounts(
    dir,
    async (url) =>
      buildEndpoints(fixture, options)[0]!.target('hub', url, {
        authorization: `Bearer ${await fetchToken(url, fixture)}`,
      }),
    options.duration,
    (line) => console.log(line),
  );
  hubSuccesses.push(...byWorkers.flatMap((w) => [successes(w.warmUp), successes(w.result)]));

  console.log('the person lookup while connectors run in the hub process:');
  const loading = await startHubWithLoads(dir);
  cleanup.add(() => loading.stop());
  const lookup = {
    ...buildEndpoints(fixture, options)[0]!.target('hub', loading.url, {
      authorization: `Bearer ${await fetchToken(loading.url, fixture)}`,
    }),
    connections: CONNECTIONS,
  };
  const duringLoads = await measureLookupDuringLoads(
    loading,
    lookup,
    options.duration,
    path.join(dir, 'sources', 'cspd.sqlite'),
    (line) => console.log(line),
  );
  await loading.stop();
  hubSuccesses.push(...duringLoads.map((d) => successes(d.result)));

  printTable(rows, options);
  printVerdict(rows, options);
  printWorkersTable(byWorkers, options.persons, options.duration);
  printDuringLoadTable(duringLoads, options.persons);
  await reportAudit(
    fixture.databaseFile,
    hubSuccesses.reduce((a, b) => a + b, 0),
  );
  if (options.cpuProfDir !== null)
    console.log(`CPU profiles written to ${options.cpuProfDir}/hub and ${options.cpuProfDir}/bare`);
  console.log(`wall time: ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

const cleanup = new Cleanup();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanup.run().finally(() => process.exit(130)));
}
try {
  await main(cleanup);
} finally {
  await cleanup.run();
}
