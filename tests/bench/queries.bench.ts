/**
 * npm run bench:queries [-- --persons N] [-- --dir DIR] [-- --duration S] [-- --page-size P] [-- --hub-workers N]
 * Times the first, middle and last pages of `widows-with-vehicles` (limit 10,000) continued
 * with `next` and asked for by `page`, one request at a time, then the throughput of a mix of
 * all its pages at 50 connections, next to a bare express + better-sqlite3 server running the
 * same SQL on the same file. The hub runs as it ships (tokens, grants, sealed next tokens, rate
 * limits, audit). --dir keeps the generated warehouse for a later run (it is reused when its
 * hub.sqlite exists); without it a temporary folder is used and removed. --hub-workers is passed
 * to `hub start --workers`. During each 50-connection run the hub's serving processes measure
 * how long their event loop was held (event-loop-delay.mjs).
 */
import Database from 'better-sqlite3';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import type { Actor } from '../../privileges/actor.ts';
import { readConfig } from '../../server/config.ts';
import { closeContext, openContext } from '../../server/context.ts';
import { createClient, type ClientCredentials } from '../../server/services/client-service.ts';
import { saveQuery } from '../../server/services/query-service.ts';
import { prepareApiFixture } from './api-fixture.ts';
import { CONNECTIONS, requestsPerSecond, rotate, runLoad, successes } from './api-load.ts';
import { QUERY_DEFINITION } from './api-shape.ts';
import { startChildServer, type ChildServer } from './child-server.ts';
import { EventLoopProbe } from './event-loop-probe.ts';
import {
  DEFAULT_FAN_IN,
  DEFAULT_RUN_ROWS,
  WHO_READ_RUNS,
  WHO_READ_TABLE,
} from '../../warehouse/audit/who-read-index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const START_TIMEOUT_MS = 300_000;
const REPEATS = 15;
const TARGET_PAGE_MS = 100;
const TARGET_RATIO = 0.8;
/** The largest limit a saved query may have: the most pages to walk. */
const BENCH_QUERY_LIMIT = 10_000;
const OPERATOR: Actor = { name: 'queries-bench', role: 'super-admin', entity: null };

interface Options {
  persons: number;
  dir: string | null;
  duration: number;
  pageSize: number;
  bornBefore: string;
  /** `hub start --workers`; the hub's own default (one per core) when not given. */
  hubWorkers: number | null;
}

interface Answer {
  rows: unknown[];
  page: number;
  has_more: boolean;
  next?: string;
}

function readOptions(argv: string[]): Options {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i === -1 ? undefined : argv[i + 1];
  };
  const integer = (flag: string, fallback: number) => {
    const n = Number(value(flag) ?? fallback);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer`);
    return n;
  };
  const dir = value('--dir');
  return {
    persons: integer('--persons', 1_000_000),
    dir: dir === undefined ? null : path.resolve(dir),
    duration: integer('--duration', 10),
    pageSize: integer('--page-size', 200),
    bornBefore: value('--born-before') ?? '2000-12-31',
    hubWorkers: value('--hub-workers') === undefined ? null : integer('--hub-workers', 1),
  };
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/** The demo in `dir` (generated unless already there), the benchmark's query saved with the largest limit, and a client. */
async function prepare(dir: string, options: Options): Promise<ClientCredentials> {
  if (!(await exists(path.join(dir, 'hub.sqlite')))) {
    console.log(`generating and loading ${options.persons.toLocaleString('en')} persons into ${dir} ...`);
    await prepareApiFixture(dir, options.persons, (line) => console.log(line));
  }
  const ctx = openContext(readConfig({ HUB_DATA_DIR: dir, LOG_LEVEL: 'silent' }));
  try {
    await saveQuery(ctx, { ...QUERY_DEFINITION, limit: BENCH_QUERY_LIMIT }, OPERATOR.name);
    return await createClient(
      ctx,
      { entity: 'NAF', name: 'queries benchmark', ratePerMinute: 1_000_000_000, ratePerDay: 1_000_000_000 },
      OPERATOR.name,
    );
  } finally {
    await closeContext(ctx);
  }
}

function startHub(dir: string, workers: number | null, probe: EventLoopProbe): Promise<ChildServer> {
  return startChildServer({
    name: 'the hub',
    args: [
      ...probe.args,
      path.join(ROOT, 'server/cli/hub.mjs'),
      'start',
      '--port',
      '0',
      ...(workers === null ? [] : ['--workers', String(workers)]),
    ],
    env: { ...process.env, ...probe.env, HUB_DATA_DIR: dir, HUB_SCHEDULER: 'off', LOG_LEVEL: 'warn' },
    ready: /Registry Hub listening on (http:\/\/\S+)/,
    timeoutMs: START_TIMEOUT_MS,
  });
}

function startBare(file: string): Promise<ChildServer> {
  return startChildServer({
    name: 'the bare query server',
    args: [
      '--import',
      'tsx',
      path.join(ROOT, 'tests/bench/bare-query-server.ts'),
      file,
      String(BENCH_QUERY_LIMIT),
    ],
    env: process.env,
    ready: /Bare query server listening on (http:\/\/\S+)/,
    timeoutMs: START_TIMEOUT_MS,
  });
}

interface Side {
  name: 'hub' | 'bare';
  url: string;
  path: string;
  headers: Record<string, string>;
}

async function ask(side: Side, body: unknown): Promise<Answer> {
  const res = await fetch(`${side.url}${side.path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...side.headers },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`${side.name} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Answer;
}

/** Every page's request body when continued with next: page 1 has none. */
async function walk(side: Side, options: Options): Promise<{ bodies: unknown[]; pages: Answer[] }> {
  const params = { born_before: options.bornBefore };
  const bodies: unknown[] = [{ params, page_size: options.pageSize }];
  const pages: Answer[] = [];
  for (;;) {
    const page = await ask(side, bodies.at(-1));
    pages.push(page);
    if (page.next === undefined) return { bodies, pages };
    bodies.push({ params, page_size: options.pageSize, next: page.next });
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function timeRequest(side: Side, body: unknown): Promise<number> {
  const started = process.hrtime.bigint();
  await ask(side, body);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** Median and worst of REPEATS requests, hub and bare taking turns so that both see the same machine. */
async function timePages(
  hub: Side,
  bare: Side,
  hubBody: unknown,
  bareBody: unknown,
): Promise<{ hub: number[]; bare: number[] }> {
  const times = { hub: [] as number[], bare: [] as number[] };
  await timeRequest(hub, hubBody);
  await timeRequest(bare, bareBody);
  for (let i = 0; i < REPEATS; i++) {
    times.hub.push(await timeRequest(hub, hubBody));
    times.bare.push(await timeRequest(bare, bareBody));
  }
  return times;
}

const ms = (n: number) => `${n.toFixed(1)} ms`;

/**
 * The audit's "who read this person" rows: every page the hub answers adds one per national ID,
 * and the hub's primary process sorts them into the who-read index, so the throughput figures
 * are printed with their number.
 */
function countAuditSubjects(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM hub_audit_subjects').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/**
 * Whether the hub's who-read indexing has caught up: no run being merged, no merge due, no rows
 * of merged runs left to delete, and a tail shorter than a run. Until then the hub is still
 * paying for the answers it gave.
 */
function whoReadIndexIdle(file: string): boolean {
  const db = new Database(file, { readonly: true });
  try {
    const one = <T>(sql: string, ...bindings: unknown[]) => db.prepare(sql).get(...bindings) as T;
    const indexedUpTo = one<{ last: number | null }>(
      `SELECT max(last_audit_id) AS last FROM ${WHO_READ_RUNS}`,
    ).last;
    const tail = one<{ n: number }>(
      'SELECT count(*) AS n FROM hub_audit_subjects WHERE audit_id > ?',
      indexedUpTo ?? 0,
    ).n;
    const building = one<{ n: number }>(
      `SELECT count(*) AS n FROM ${WHO_READ_RUNS} WHERE state = 'building'`,
    ).n;
    const crowded = one<{ n: number }>(
      `SELECT count(*) AS n FROM (SELECT level FROM ${WHO_READ_RUNS} WHERE state = 'live' GROUP BY level HAVING count(*) >= ?)`,
      DEFAULT_FAN_IN,
    ).n;
    const dead = one<{ n: number }>(
      `SELECT count(*) AS n FROM (SELECT DISTINCT run FROM ${WHO_READ_TABLE}) WHERE run NOT IN (SELECT run FROM ${WHO_READ_RUNS})`,
    ).n;
    return tail < DEFAULT_RUN_ROWS && building === 0 && crowded === 0 && dead === 0;
  } finally {
    db.close();
  }
}

/** Seconds until the hub's who-read indexing has caught up with the answers of a run. */
async function waitForWhoReadIndex(file: string): Promise<number> {
  const started = performance.now();
  while (!whoReadIndexIdle(file)) await new Promise((resolve) => setTimeout(resolve, 100));
  return (performance.now() - started) / 1000;
}

async function main(options: Options, cleanup: Array<() => Promise<void>>): Promise<void> {
  let dir = options.dir;
  if (dir === null) {
    dir = await mkdtemp(path.join(tmpdir(), 'hub-queries-bench-'));
    const temporary = dir;
    cleanup.push(() => rm(temporary, { recursive: true, force: true }));
  } else {
    await mkdir(dir, { recursive: true });
  }
  const client = await prepare(dir, options);
  const probe = new EventLoopProbe();
  cleanup.push(() => Promise.resolve(probe.close()));
  const hubServer = await startHub(dir, options.hubWorkers, probe);
  cleanup.push(() => hubServer.stop());
  const bareServer = await startBare(path.join(dir, 'hub.sqlite'));
  cleanup.push(() => bareServer.stop());

  const tokenRes = await fetch(`${hubServer.url}/api/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'client_credentials', ...client }),
  });
  const { access_token: token } = (await tokenRes.json()) as { access_token: string };
  const hub: Side = {
    name: 'hub',
    url: hubServer.url,
    path: '/api/v1/queries/widows-with-vehicles',
    headers: { authorization: `Bearer ${token}` },
  };
  const bare: Side = { name: 'bare', url: bareServer.url, path: '/queries/widows', headers: {} };

  const hubWalk = await walk(hub, options);
  const bareWalk = await walk(bare, options);
  const rowsOf = (pages: Answer[]) => pages.flatMap((p) => p.rows);
  if (!isDeepStrictEqual(rowsOf(hubWalk.pages), rowsOf(bareWalk.pages)))
    throw new Error('the hub and the bare server returned different rows');
  const last = hubWalk.pages.length;
  const middle = Math.ceil(last / 2);
  const params = { born_before: options.bornBefore };
  const byNumber = (page: number) => ({ params, page, page_size: options.pageSize });
  for (const page of [1, middle, last]) {
    const numbered = await ask(hub, byNumber(page));
    if (!isDeepStrictEqual(numbered.rows, hubWalk.pages[page - 1]!.rows))
      throw new Error(`page ${page} by number differs from page ${page} by next`);
  }
  console.log(
    `\n${options.persons.toLocaleString('en')} persons, SQLite, widows-with-vehicles born before ${options.bornBefore}: ` +
      `${rowsOf(hubWalk.pages).length.toLocaleString('en')} rows in ${last} pages of ${options.pageSize} (limit ${BENCH_QUERY_LIMIT.toLocaleString('en')}); ` +
      `1 connection: median of ${REPEATS} requests (worst in brackets); ${CONNECTIONS} connections: autocannon ${options.duration} s over all pages\n`,
  );
  console.log('| request | hub | bare server | hub / bare |');
  console.log('| --- | --- | --- | --- |');
  const worstPage = { next: 0, page: 0 };
  for (const [label, page] of [
    ['first', 1],
    ['middle', middle],
    ['last', last],
  ] as const) {
    for (const mode of ['next', 'page'] as const) {
      const hubBody = mode === 'next' ? hubWalk.bodies[page - 1] : byNumber(page);
      const bareBody = mode === 'next' ? bareWalk.bodies[page - 1] : byNumber(page);
      const t = await timePages(hub, bare, hubBody, bareBody);
      worstPage[mode] = Math.max(worstPage[mode], median(t.hub));
      console.log(
        `| ${label} page (${page}) by \`${mode}\` | ${ms(median(t.hub))} (${ms(Math.max(...t.hub))}) | ` +
          `${ms(median(t.bare))} (${ms(Math.max(...t.bare))}) | ${(median(t.hub) / median(t.bare)).toFixed(2)} |`,
      );
    }
  }
  const warehouseFile = path.join(dir, 'hub.sqlite');
  const subjectsBefore = countAuditSubjects(warehouseFile);
  const ratios: number[] = [];
  for (const mode of ['next', 'page'] as const) {
    const load = async (side: Side, walked: { bodies: unknown[] }) => {
      const bodies = mode === 'next' ? walked.bodies : walked.bodies.map((_, i) => byNumber(i + 1));
      const nextBody = rotate(bodies.map((b) => JSON.stringify(b)));
      return runLoad(
        {
          url: side.url,
          method: 'POST',
          headers: { 'content-type': 'application/json', ...side.headers },
          next: () => ({ path: side.path, body: nextBody() }),
        },
        options.duration,
      );
    };
    await probe.mark(hubServer.pid);
    const hubResult = await load(hub, hubWalk);
    const delay = await probe.mark(hubServer.pid);
    // The hub's deferred work is counted against the hub, and does not slow the bare server's run.
    const catchUp = await waitForWhoReadIndex(warehouseFile);
    const bareResult = await load(bare, bareWalk);
    for (const [name, r] of [
      ['hub', hubResult],
      ['bare', bareResult],
    ] as const) {
      if (successes(r) !== r.requests.total)
        throw new Error(`${name}: ${r.requests.total - successes(r)} requests were not answered 200`);
    }
    // Sustained: the requests answered over the run and the time the index took to catch up after it.
    const sustained = (requestsPerSecond(hubResult) * hubResult.duration) / (hubResult.duration + catchUp);
    const ratio = sustained / requestsPerSecond(bareResult);
    ratios.push(ratio);
    console.log(
      `| all pages by \`${mode}\`, ${CONNECTIONS} connections | ${Math.round(sustained).toLocaleString('en')} req/s (${Math.round(requestsPerSecond(hubResult)).toLocaleString('en')} during the run, index caught up ${catchUp.toFixed(1)} s after), p99 ${hubResult.latency.p99} ms, event loop held p99 ${delay.p99} / max ${delay.max} ms | ` +
        `${Math.round(requestsPerSecond(bareResult)).toLocaleString('en')} req/s, p99 ${bareResult.latency.p99} ms | ${ratio.toFixed(2)} |`,
    );
  }
  const verdict = (met: boolean) => (met ? 'met' : 'NOT met');
  console.log(
    `\nslowest page by next at 1 connection (median): ${ms(worstPage.next)} (target under ${TARGET_PAGE_MS} ms): ${verdict(worstPage.next < TARGET_PAGE_MS)}; ` +
      `by page number: ${ms(worstPage.page)}; ` +
      `throughput by next ${(ratios[0]! * 100).toFixed(0)}% of the bare server (target ${TARGET_RATIO * 100}%): ${verdict(ratios[0]! >= TARGET_RATIO)}; ` +
      `the audit's "who read" rows: ${subjectsBefore.toLocaleString('en')} before the ${CONNECTIONS}-connection runs, ` +
      `${countAuditSubjects(warehouseFile).toLocaleString('en')} after`,
  );
}

const cleanup: Array<() => Promise<void>> = [];
try {
  await main(readOptions(process.argv.slice(2)), cleanup);
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  for (const step of cleanup.reverse()) await step().catch((err: unknown) => console.error(String(err)));
}
