import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import type { RunSummary } from '../../connectors/run-connector.ts';
import { CONNECTIONS, runLoad, type LoadTarget } from './api-load.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CONNECTOR = 'cspd-personal-info';
/** Long enough to outlast any load; the run is stopped when the load is done. */
const UNTIL_STOPPED_SECONDS = 3600;

export interface DuringLoad {
  label: string;
  result: Result;
  load: RunSummary | null;
  loadSeconds: number;
}

interface HubWithLoads {
  url: string;
  runConnector(mode: 'full' | 'incremental'): Promise<RunSummary>;
  stop(): Promise<void>;
}

/** The hub in a child process that runs connectors in-process on demand, as its scheduler would. */
export async function startHubWithLoads(dir: string): Promise<HubWithLoads> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'hub-with-loads.ts'), dir], {
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting: Array<(summary: RunSummary) => void> = [];
  let announce!: (url: string) => void;
  const listening = new Promise<string>((resolve) => (announce = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const url = /Registry Hub listening on (http:\/\/\S+)/.exec(line)?.[1];
    if (url !== undefined) announce(url);
    if (line.startsWith('run-done '))
      waiting.shift()?.(JSON.parse(line.slice('run-done '.length)) as RunSummary);
  });
  const exited = once(child, 'exit').then(() => {
    throw new Error('the hub with loads exited before it listened');
  });
  const url = await Promise.race([listening, exited]);
  return {
    url,
    runConnector(mode) {
      return new Promise<RunSummary>((resolve) => {
        waiting.push(resolve);
        child.stdin.write(`run ${CONNECTOR} ${mode}\n`);
      });
    },
    async stop() {
      if (child.exitCode !== null) return;
      const done = once(child, 'exit');
      child.kill('SIGTERM');
      await done;
    },
  };
}

/** 1% of the citizens change (a name and their update time): what an incremental run picks up. */
export function changeCitizens(sourceFile: string): number {
  const db = new Database(sourceFile);
  const changed = db
    .prepare(
      `UPDATE citizens SET FNAME = FNAME || '', UPDATED_AT = '2027-06-01T00:00:00' WHERE rowid % 100 = 0`,
    )
    .run().changes;
  db.close();
  return changed;
}

/** The lookup under load for `seconds` with nothing else running, then for exactly as long as each load takes. */
export async function measureLookupDuringLoads(
  hub: HubWithLoads,
  target: LoadTarget,
  seconds: number,
  sourceFile: string,
  print: (line: string) => void,
): Promise<DuringLoad[]> {
  const rows: DuringLoad[] = [];
  const quiet = await runLoad(target, seconds);
  rows.push({ label: 'no load running', result: quiet, load: null, loadSeconds: 0 });
  print(`  lookup, no load: p99 ${quiet.latency.p99} ms`);
  const during = async (label: string, mode: 'full' | 'incremental') => {
    const instance = autocannon({
      url: target.url,
      connections: CONNECTIONS,
      duration: UNTIL_STOPPED_SECONDS,
      requests: [
        { method: target.method, headers: target.headers, setupRequest: (r) => ({ ...r, ...target.next() }) },
      ],
    });
    const started = Date.now();
    const load = await hub.runConnector(mode);
    const loadSeconds = (Date.now() - started) / 1000;
    instance.stop();
    const result = await instance;
    if (load.status !== 'succeeded') throw new Error(`${mode} load failed: ${load.error ?? 'no error text'}`);
    rows.push({ label, result, load, loadSeconds });
    print(`  lookup during ${label}: p99 ${result.latency.p99} ms over ${loadSeconds.toFixed(1)} s`);
  };
  await during(`a full load of ${CONNECTOR}`, 'full');
  const changed = changeCitizens(sourceFile);
  await during(
    `an incremental load of ${CONNECTOR} (${changed.toLocaleString('en')} changed rows)`,
    'incremental',
  );
  return rows;
}

export function printDuringLoadTable(rows: DuringLoad[], persons: number): void {
  console.log('');
  console.log(
    `person lookup while connectors run in the hub process (as scheduled runs do): ${persons.toLocaleString('en')} persons, SQLite, autocannon ${CONNECTIONS} connections`,
  );
  console.log('');
  console.log(
    '| while | load time s | lookups | lookup req/s | p50 ms | p99 ms | max ms | non-2xx | errors |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const { label, result, loadSeconds, load } of rows) {
    const completed = result.requests.total;
    console.log(
      `| ${label} | ${load === null ? '-' : loadSeconds.toFixed(1)} | ${completed.toLocaleString('en')} | ${Math.round(result.requests.average).toLocaleString('en')} | ` +
        `${result.latency.p50} | ${result.latency.p99} | ${result.latency.max} | ${result.non2xx} | ${result.errors} |`,
    );
  }
}
