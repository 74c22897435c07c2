/**
 * npm run bench:scale [-- --persons N] [-- --duration S]
 * The hub at scale on PostgreSQL: generates the demo (default 10,000,000 persons), loads every
 * registry with a full run of its connector (each in its own process, as load.bench.ts does),
 * then serves the person lookup and a saved query under load (autocannon, 50 connections,
 * loopback) with tokens, grants, rate limits and the audit log on, and prints one table: load
 * time and rows/s, the loads' peak RSS, lookup and saved-query throughput and p99, and the
 * warehouse's size on disk.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Result } from 'autocannon';
import pg from 'pg';
import { generateDemo } from '../../connectors/demo/generate-demo.ts';
import type { Actor } from '../../privileges/actor.ts';
import { grantAccess } from '../../privileges/grants.ts';
import { BULK_NODE_FLAGS } from '../../server/cli/bulk-process.mjs';
import { readConfig } from '../../server/config.ts';
import { closeContext, openContext } from '../../server/context.ts';
import { createClient, type ClientCredentials } from '../../server/services/client-service.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';
import { saveQuery } from '../../server/services/query-service.ts';
import { verifyAuditChain } from '../../warehouse/audit/verify-audit-chain.ts';
import { startPostgres, stopPostgres } from '../support/postgres.ts';
import { CONNECTIONS, requestsPerSecond, rotate, runLoad, successes, type LoadTarget } from './api-load.ts';
import {
  BORN_BEFORE_DATES,
  CSPD_GRANTED_COLUMNS,
  PAGE_SIZE,
  QUERY_DEFINITION,
  QUERY_NAME,
} from './api-shape.ts';
import { startChildServer, type ChildServer } from './child-server.ts';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LOAD_WORKER = path.join(ROOT, 'tests/bench/load-worker.ts');
const OPERATOR: Actor = { name: 'scale-bench', role: 'super-admin', entity: null };
// Far above what a run can send: the benchmark measures the limiter's cost, not its refusals.
const UNLIMITED = 1_000_000_000;
const LOOKUP_IDS = 10_000;
const WARM_UP_SECONDS = 2;
const START_TIMEOUT_MS = 600_000;

interface Options {
  persons: number;
  duration: number;
}

interface LoadMeasure {
  connector: string;
  read: number;
  rows: number;
  ms: number;
  maxRssMb: number;
}

function readNumber(argv: string[], flag: string, fallback: number): number {
  const i = argv.indexOf(flag);
  const n = i === -1 ? fallback : Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer`);
  return n;
}

const readOptions = (argv: string[]): Options => ({
  persons: readNumber(argv, '--persons', 10_000_000),
  duration: readNumber(argv, '--duration', 10),
});

/** Each connector's full load in a process of its own, so the peak RSS is the load's. */
async function measureLoad(
  databaseUrl: string,
  connectorsDir: string,
  connector: string,
): Promise<LoadMeasure> {
  const job = JSON.stringify({ mode: 'ours-full', databaseUrl, connectorsDir, connector });
  const { stdout } = await run(process.execPath, [...BULK_NODE_FLAGS, '--import', 'tsx', LOAD_WORKER, job], {
    maxBuffer: 1 << 20,
  });
  const measured = JSON.parse(stdout.trim().split('\n').pop()!) as Omit<LoadMeasure, 'connector'>;
  return { connector, ...measured };
}

/** NAF as the consuming system: grants, an unlimited client, the saved query, and persons to look up. */
async function prepareAccess(
  dir: string,
  databaseUrl: string,
): Promise<{ client: ClientCredentials; nationalIds: string[] }> {
  const BENCH_GRANT_TERMS = { purpose: 'scale benchmark', legalBasis: 'benchmark data, no real persons' };
  const ctx = openContext(readConfig({ HUB_DATA_DIR: dir, LOG_LEVEL: 'silent' }, { databaseUrl }));
  try {
    await prepareWarehouse(ctx);
    await grantAccess(ctx, {
      consumer: 'NAF',
      table: 'cspd_personal_info',
      columns: [...CSPD_GRANTED_COLUMNS],
      actor: OPERATOR,
      ...BENCH_GRANT_TERMS,
    });
    await grantAccess(ctx, {
      consumer: 'NAF',
      table: 'dvld_vehicles',
      columns: [],
      actor: OPERATOR,
      ...BENCH_GRANT_TERMS,
    });
    const client = await createClient(
      ctx,
      { entity: 'NAF', name: 'scale benchmark', ratePerMinute: UNLIMITED, ratePerDay: UNLIMITED },
      OPERATOR.name,
    );
    await saveQuery(ctx, QUERY_DEFINITION, OPERATOR.name);
    const total = Number(
      (await ctx.knex('cspd_personal_info').count<Array<{ n: string }>>({ n: '*' }))[0]?.n ?? 0,
    );
    // Spread over the whole table, not its first pages; the same persons on every run.
    const nationalIds = await ctx
      .knex('cspd_personal_info')
      .whereRaw('abs(hashtext(national_id)) % ? = 0', [Math.max(1, Math.floor(total / LOOKUP_IDS))])
      .limit(LOOKUP_IDS)
      .pluck<string[]>('national_id');
    if (nationalIds.length === 0) throw new Error('cspd_personal_info is empty');
    return { client, nationalIds };
  } finally {
    await closeContext(ctx);
  }
}

async function fetchToken(hubUrl: string, client: ClientCredentials): Promise<string> {
  const res = await fetch(`${hubUrl}/api/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'client_credentials', ...client }),
  });
  if (!res.ok) throw new Error(`POST /api/v1/token answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

async function measureEndpoint(label: string, target: LoadTarget, seconds: number): Promise<Result> {
  await runLoad(target, WARM_UP_SECONDS);
  const result = await runLoad(target, seconds);
  console.log(
    `  ${label}: ${Math.round(requestsPerSecond(result)).toLocaleString('en')} req/s, p99 ${result.latency.p99} ms, ` +
      `2xx ${successes(result).toLocaleString('en')}, non-2xx ${result.non2xx}, errors ${result.errors}`,
  );
  return result;
}

async function fetchSizes(databaseUrl: string): Promise<{ database: number; registry: number }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const database = await client.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n');
    const registry = await client.query<{ n: string | null }>(
      'SELECT sum(pg_total_relation_size(quote_ident(name))) AS n FROM hub_tables',
    );
    return { database: Number(database.rows[0]!.n), registry: Number(registry.rows[0]!.n ?? 0) };
  } finally {
    await client.end();
  }
}

const formatLoad = () =>
  loadavg()
    .map((n) => n.toFixed(1))
    .join(' / ') + ' (1 / 5 / 15 min)';
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const int = (n: number) => Math.round(n).toLocaleString('en');

function printTable(
  options: Options,
  loads: LoadMeasure[],
  lookup: Result,
  query: Result,
  sizes: { database: number; registry: number },
) {
  const rows = loads.reduce((sum, l) => sum + l.rows, 0);
  const read = loads.reduce((sum, l) => sum + l.read, 0);
  const ms = loads.reduce((sum, l) => sum + l.ms, 0);
  const cspd = loads.find((l) => l.connector === 'cspd-personal-info');
  console.log('');
  console.log(
    `${int(options.persons)} persons, PostgreSQL warehouse, every demo registry loaded by a full run of its connector (one after another, each in its own process); ` +
      `API on loopback, autocannon ${CONNECTIONS} connections, ${options.duration} s per endpoint after a ${WARM_UP_SECONDS} s warm-up; tokens, grants, rate limits and audit on`,
  );
  console.log('');
  console.log('| measure | value |');
  console.log('|---|---:|');
  console.log(`| load: source rows read / registry rows loaded | ${int(read)} / ${int(rows)} |`);
  console.log(`| load: time (sum of the ${loads.length} connector runs) | ${(ms / 1000).toFixed(1)} s |`);
  console.log(`| load: rows/s (source rows read per second) | ${int(read / (ms / 1000))} |`);
  if (cspd !== undefined)
    console.log(
      `| load: \`cspd-personal-info\` alone | ${(cspd.ms / 1000).toFixed(1)} s, ${int(cspd.read / (cspd.ms / 1000))} rows/s |`,
    );
  console.log(
    `| load: peak RSS (largest of the connector runs) | ${Math.max(...loads.map((l) => l.maxRssMb)).toFixed(0)} MB |`,
  );
  console.log(
    `| person lookup \`GET /api/v1/persons/{national_id}\`: req/s, p50 / p99 | ${int(requestsPerSecond(lookup))}, ${lookup.latency.p50} / ${lookup.latency.p99} ms |`,
  );
  console.log(
    `| saved query \`POST /api/v1/queries/${QUERY_NAME}\` (page of ${PAGE_SIZE}): req/s, p50 / p99 | ${int(requestsPerSecond(query))}, ${query.latency.p50} / ${query.latency.p99} ms |`,
  );
  console.log(
    `| non-2xx / errors (lookup, saved query) | ${lookup.non2xx} / ${lookup.errors}, ${query.non2xx} / ${query.errors} |`,
  );
  console.log(
    `| warehouse size: database / registry tables with indexes | ${mb(sizes.database)} / ${mb(sizes.registry)} |`,
  );
}

async function main(): Promise<void> {
  const started = Date.now();
  const options = readOptions(process.argv);
  // The machine may be shared: its load says how much of it the run had.
  console.log(`load average at the start ${formatLoad()}`);
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-scale-bench-'));
  const pgServer = await startPostgres();
  let hub: ChildServer | null = null;
  try {
    const admin = new pg.Client({ connectionString: pgServer.url });
    await admin.connect();
    await admin.query('CREATE DATABASE hub_scale');
    await admin.end();
    const databaseUrl = pgServer.url.replace(/\/postgres$/, '/hub_scale');

    const t0 = Date.now();
    const manifest = await generateDemo({ dir, persons: options.persons, seed: 1 });
    console.log(
      `demo: ${int(options.persons)} persons generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    const connectorsDir = path.join(dir, 'connectors');
    const loads: LoadMeasure[] = [];
    for (const connector of Object.keys(manifest.connectors).sort()) {
      const measured = await measureLoad(databaseUrl, connectorsDir, connector);
      loads.push(measured);
      console.log(
        `  load ${connector}: ${int(measured.read)} read, ${int(measured.rows)} loaded in ${(measured.ms / 1000).toFixed(1)} s, peak RSS ${measured.maxRssMb.toFixed(0)} MB`,
      );
    }

    const access = await prepareAccess(dir, databaseUrl);
    hub = await startChildServer({
      name: 'the hub',
      args: [path.join(ROOT, 'server/cli/hub.mjs'), 'start', '--port', '0'],
      env: {
        ...process.env,
        HUB_DB: databaseUrl,
        HUB_DATA_DIR: dir,
        HUB_SCHEDULER: 'off',
        LOG_LEVEL: 'warn',
      },
      ready: /Registry Hub listening on (http:\/\/\S+)/,
      timeoutMs: START_TIMEOUT_MS,
    });
    const headers = { authorization: `Bearer ${await fetchToken(hub.url, access.client)}` };
    const nextId = rotate(access.nationalIds);
    const lookup = await measureEndpoint(
      'person lookup',
      { url: hub.url, method: 'GET', headers, next: () => ({ path: `/api/v1/persons/${nextId()}` }) },
      options.duration,
    );
    const nextDate = rotate(BORN_BEFORE_DATES);
    const query = await measureEndpoint(
      'saved query',
      {
        url: hub.url,
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        next: () => ({
          path: `/api/v1/queries/${QUERY_NAME}`,
          body: JSON.stringify({ params: { born_before: nextDate() }, page_size: PAGE_SIZE }),
        }),
      },
      options.duration,
    );
    // Requests autocannon left in flight finish before the hub is stopped.
    await sleep(2000);
    await hub.stop();
    hub = null;

    printTable(options, loads, lookup, query, await fetchSizes(databaseUrl));
    const ctx = openContext(readConfig({ HUB_DATA_DIR: dir, LOG_LEVEL: 'silent' }, { databaseUrl }));
    try {
      const report = await verifyAuditChain(ctx.knex);
      console.log('');
      console.log(
        `audit chain: ${report.ok ? `ok, ${int(report.rows)} rows verified` : `BROKEN at row ${report.brokenAt}: ${report.reason}`}`,
      );
      if (!report.ok) process.exitCode = 1;
    } finally {
      await closeContext(ctx);
    }
    console.log(
      `wall time: ${((Date.now() - started) / 1000).toFixed(0)} s; load average at the end ${formatLoad()}`,
    );
  } finally {
    await hub?.stop();
    await stopPostgres(pgServer);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
