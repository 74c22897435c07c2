/**
 * npm run bench:load [-- --persons N]
 * Loads the CSPD personal registry into SQLite and PostgreSQL and prints, from one run, the
 * hub's full load next to the raw bulk path a person would write by hand (tests/bench/load-worker.ts),
 * the hub's peak RSS, an incremental run after 0.1% of the source rows changed, and a first
 * incremental run into an empty table next to a full one. Each load runs in its own process.
 */
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { generateDemo } from '../../connectors/demo/generate-demo.ts';
import { BULK_NODE_FLAGS } from '../../server/cli/bulk-process.mjs';
import { startPostgres, stopPostgres } from '../support/postgres.ts';

const run = promisify(execFile);
const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'load-worker.ts');
const CONNECTOR = 'cspd-personal-info';
const DEFAULT_PERSONS = 100_000;

interface Measure {
  rows: number;
  read: number;
  ms: number;
  maxRssMb: number;
}

interface Results {
  raw: Measure;
  first: Measure;
  reload: Measure;
  firstIncremental: Measure;
  incremental?: Measure;
}

function readPersons(argv: string[]): number {
  const i = argv.indexOf('--persons');
  const n = i === -1 ? DEFAULT_PERSONS : Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error('--persons must be a positive integer');
  return n;
}

async function measure(mode: string, databaseUrl: string, connectorsDir: string): Promise<Measure> {
  const extra = process.env['BENCH_CPU_PROF']
    ? ['--cpu-prof', '--cpu-prof-dir', process.env['BENCH_CPU_PROF']]
    : [];
  const { stdout } = await run(
    process.execPath,
    [
      // The hub's side runs as `hub connectors run` runs it (server/cli/bulk-process.mjs).
      ...(mode === 'raw' ? [] : BULK_NODE_FLAGS),
      ...extra,
      '--import',
      'tsx',
      WORKER,
      JSON.stringify({ mode, databaseUrl, connectorsDir, connector: CONNECTOR }),
    ],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').pop()!) as Measure;
}

const best = (a: Measure, b: Measure) => (b.ms < a.ms ? b : a);

/** 0.1% of the citizens change (a name and their update time), as a day of civil-status events would. */
function changeSource(sourceFile: string): number {
  const db = new Database(sourceFile);
  const changed = db
    .prepare(
      `UPDATE citizens SET FNAME = FNAME || '', MARITAL_CODE = 'M', UPDATED_AT = '2027-01-01T00:00:00' WHERE rowid % 1000 = 0`,
    )
    .run().changes;
  db.close();
  return changed;
}

async function createDatabases(serverUrl: string, names: string[]): Promise<string[]> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    for (const name of names) await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return names.map((name) => serverUrl.replace(/\/postgres$/, `/${name}`));
}

const seconds = (m: Measure) => (m.ms / 1000).toFixed(2);
const rate = (m: Measure) => Math.round(m.read / (m.ms / 1000)).toLocaleString('en');
const megabytes = (mb: number) => `${mb.toFixed(0)} MB`;
const percent = (part: number, whole: number) => `${((100 * part) / whole).toFixed(0)}%`;

function printTables(persons: number, changed: number, results: Map<string, Results>): void {
  const first = [...results.values()][0]!;
  console.log('');
  console.log(
    `${CONNECTOR}, ${persons.toLocaleString('en')} persons (${first.raw.read.toLocaleString('en')} source rows): ` +
      'raw bulk path by hand (best of 2) next to the hub, each side from the first source read to the committed, indexed table',
  );
  console.log('');
  console.log(
    '| database | raw s | raw rows/s | hub full load s | hub rows/s | hub / raw | hub reload s | reload / raw | hub peak RSS (full load, reload) | raw peak RSS |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [name, r] of results) {
    const peak = Math.max(r.first.maxRssMb, r.reload.maxRssMb);
    console.log(
      `| ${name} | ${seconds(r.raw)} | ${rate(r.raw)} | ${seconds(r.first)} | ${rate(r.first)} | ${percent(r.raw.ms, r.first.ms)} | ` +
        `${seconds(r.reload)} | ${percent(r.raw.ms, r.reload.ms)} | ${megabytes(peak)} | ${megabytes(r.raw.maxRssMb)} |`,
    );
  }
  console.log('');
  console.log(
    `incremental runs: the first one into an empty table next to the full load into an empty table; ` +
      `one after ${changed.toLocaleString('en')} source rows changed (0.1%) next to the reload`,
  );
  console.log('');
  console.log(
    '| database | first incremental s | first incremental / full | incremental s (rows) | incremental / reload | peak RSS (first incremental, incremental) |',
  );
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [name, r] of results) {
    const inc = r.incremental!;
    console.log(
      `| ${name} | ${seconds(r.firstIncremental)} | ${(r.firstIncremental.ms / r.first.ms).toFixed(2)}× | ` +
        `${seconds(inc)} (${inc.rows.toLocaleString('en')}) | ${percent(inc.ms, r.reload.ms)} | ` +
        `${megabytes(r.firstIncremental.maxRssMb)}, ${megabytes(inc.maxRssMb)} |`,
    );
  }
}

async function main() {
  const persons = readPersons(process.argv);
  const started = Date.now();
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-bench-'));
  const pgServer = await startPostgres();
  try {
    await generateDemo({ dir, persons, seed: 1 });
    console.log(
      `demo: ${persons.toLocaleString('en')} persons generated in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    const connectorsDir = path.join(dir, 'connectors');
    const [pgMain, pgFresh] = await createDatabases(pgServer.url, ['hub_bench', 'hub_bench_incremental']);
    const databases = [
      {
        name: 'SQLite',
        url: `sqlite:${path.join(dir, 'hub.sqlite')}`,
        fresh: `sqlite:${path.join(dir, 'inc.sqlite')}`,
      },
      { name: 'PostgreSQL', url: pgMain!, fresh: pgFresh! },
    ];
    const results = new Map<string, Results>();
    for (const db of databases) {
      // Raw and hub loads alternate, so a noisy neighbour hurts both alike.
      const raw1 = await measure('raw', db.url, connectorsDir);
      const first = await measure('ours-full', db.url, connectorsDir);
      const raw2 = await measure('raw', db.url, connectorsDir);
      const reload = await measure('ours-full', db.url, connectorsDir);
      const firstIncremental = await measure('ours-incremental', db.fresh, connectorsDir);
      results.set(db.name, { raw: best(raw1, raw2), first, reload, firstIncremental });
      const timed = (m: Measure) => `${m.ms.toFixed(0)} ms (${megabytes(m.maxRssMb)})`;
      console.log(
        `${db.name}: raw ${timed(raw1)} / ${timed(raw2)}, hub full load ${timed(first)}, ` +
          `reload ${timed(reload)}, first incremental ${timed(firstIncremental)}`,
      );
    }
    const changed = changeSource(path.join(dir, 'sources', 'cspd.sqlite'));
    for (const db of databases)
      results.get(db.name)!.incremental = await measure('ours-incremental', db.url, connectorsDir);
    printTables(persons, changed, results);
    console.log('');
    console.log(`wall time ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await stopPostgres(pgServer);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
