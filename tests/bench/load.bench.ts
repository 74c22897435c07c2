/**
 * npm run bench:load [-- --persons N]
 * Loads the CSPD personal registry into SQLite and PostgreSQL and prints, from one run, the
 * hub's full load next to a raw bulk load of the same rows, peak RSS, and an incremental run
 * after 0.1% of the source rows changed. Each load runs in its own process.
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
import { startPostgres, stopPostgres } from '../support/postgres.ts';

const run = promisify(execFile);
const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'load-worker.ts');
const CONNECTOR = 'cspd-personal-info';

interface Measure {
  rows: number;
  read: number;
  ms: number;
  maxRssMb: number;
}

function readPersons(argv: string[]): number {
  const i = argv.indexOf('--persons');
  const n = i === -1 ? 1_000_000 : Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error('--persons must be a positive integer');
  return n;
}

async function measure(mode: string, databaseUrl: string, connectorsDir: string): Promise<Measure> {
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', WORKER, JSON.stringify({ mode, databaseUrl, connectorsDir, connector: CONNECTOR })],
    {
      maxBuffer: 1 << 20,
    },
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

async function main() {
  const persons = readPersons(process.argv);
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-bench-'));
  const pgServer = await startPostgres();
  try {
    const t0 = Date.now();
    await generateDemo({ dir, persons, seed: 1 });
    console.log(
      `demo: ${persons.toLocaleString('en')} persons generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    const connectorsDir = path.join(dir, 'connectors');
    const admin = new pg.Client({ connectionString: pgServer.url });
    await admin.connect();
    await admin.query('CREATE DATABASE hub_bench');
    await admin.end();
    const databases = [
      { name: 'SQLite', url: `sqlite:${path.join(dir, 'hub.sqlite')}` },
      { name: 'PostgreSQL', url: pgServer.url.replace(/\/postgres$/, '/hub_bench') },
    ];
    const results = new Map<string, { raw: Measure; first: Measure; reload: Measure; inc?: Measure }>();
    for (const db of databases) {
      // Raw and hub loads alternate, so a noisy neighbour hurts both alike.
      const raw1 = await measure('raw', db.url, connectorsDir);
      const first = await measure('ours-full', db.url, connectorsDir);
      const raw2 = await measure('raw', db.url, connectorsDir);
      const reload = await measure('ours-full', db.url, connectorsDir);
      results.set(db.name, { raw: best(raw1, raw2), first, reload });
      console.log(
        `${db.name}: raw ${raw1.ms.toFixed(0)} / ${raw2.ms.toFixed(0)} ms, hub first load ${first.ms.toFixed(0)} ms, reload ${reload.ms.toFixed(0)} ms`,
      );
    }
    const changed = changeSource(path.join(dir, 'sources', 'cspd.sqlite'));
    for (const db of databases)
      results.get(db.name)!.inc = await measure('ours-incremental', db.url, connectorsDir);

    const rate = (m: Measure) => Math.round(m.read / (m.ms / 1000));
    console.log('');
    console.log(
      `${CONNECTOR}, ${persons.toLocaleString('en')} persons: raw bulk (best of 2) next to the hub's first full load (empty warehouse) and a reload; ` +
        `incremental run after ${changed.toLocaleString('en')} source rows changed (0.1%), next to the reload`,
    );
    console.log('');
    console.log(
      '| database | source rows | raw bulk rows/s | hub first load rows/s (vs raw) | hub reload rows/s (vs raw) | hub peak RSS | incremental run (rows) | incremental / reload |',
    );
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
    const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)}%`;
    for (const db of databases) {
      const r = results.get(db.name)!;
      const peak = Math.max(r.first.maxRssMb, r.reload.maxRssMb, r.inc!.maxRssMb);
      console.log(
        `| ${db.name} | ${r.first.read.toLocaleString('en')} | ${rate(r.raw).toLocaleString('en')} | ${rate(r.first).toLocaleString('en')} (${pct(rate(r.first), rate(r.raw))}) | ` +
          `${rate(r.reload).toLocaleString('en')} (${pct(rate(r.reload), rate(r.raw))}) | ${peak.toFixed(0)} MB | ` +
          `${(r.inc!.ms / 1000).toFixed(2)} s (${r.inc!.rows}) | ${((100 * r.inc!.ms) / r.reload.ms).toFixed(1)}% |`,
      );
    }
  } finally {
    await stopPostgres(pgServer);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
