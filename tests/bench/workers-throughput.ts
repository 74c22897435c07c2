/**
 * The `--workers` axis of `npm run bench:api`: the same person lookup load on the hub started
 * with 1 and with 2 worker processes (`hub start --workers N`), one after the other on the same
 * warehouse, rate limits and audit on. On SQLite every worker has its own connections to the one
 * file, and each request's rate-limit count and audit row are written through the warehouse.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Result } from 'autocannon';
import { CONNECTIONS, requestsPerSecond, runLoad, type LoadTarget } from './api-load.ts';
import { startChildServer } from './child-server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WORKER_COUNTS = [1, 2] as const;
const WARM_UP_SECONDS = 2;
const START_TIMEOUT_MS = 300_000;

export interface WorkersRun {
  workers: number;
  warmUp: Result;
  result: Result;
}

/** `lookupAt(url)` builds the lookup load (with a fresh token) for a hub listening at `url`. */
export async function measureWorkerCounts(
  dir: string,
  lookupAt: (url: string) => Promise<LoadTarget>,
  seconds: number,
  log: (line: string) => void,
): Promise<WorkersRun[]> {
  const runs: WorkersRun[] = [];
  for (const workers of WORKER_COUNTS) {
    const hub = await startChildServer({
      name: `the hub with ${workers} worker(s)`,
      args: [path.join(ROOT, 'server/cli/hub.mjs'), 'start', '--port', '0', '--workers', String(workers)],
      env: { ...process.env, HUB_DATA_DIR: dir, HUB_SCHEDULER: 'off', LOG_LEVEL: 'warn' },
      ready: /Registry Hub listening on (http:\/\/\S+)/,
      timeoutMs: START_TIMEOUT_MS,
    });
    try {
      const target = await lookupAt(hub.url);
      const warmUp = await runLoad(target, WARM_UP_SECONDS);
      const result = await runLoad(target, seconds);
      log(
        `  hub --workers ${workers}: ${Math.round(requestsPerSecond(result)).toLocaleString('en')} req/s, ` +
          `p99 ${result.latency.p99} ms, non-2xx ${result.non2xx}, errors ${result.errors}`,
      );
      runs.push({ workers, warmUp, result });
    } finally {
      await hub.stop();
    }
  }
  return runs;
}

export function printWorkersTable(runs: WorkersRun[], persons: number, seconds: number): void {
  const base = runs[0]!;
  console.log('');
  console.log(
    `person lookup by worker processes (\`hub start --workers N\`): ${persons.toLocaleString('en')} persons, SQLite, ` +
      `autocannon ${CONNECTIONS} connections, ${seconds} s after a ${WARM_UP_SECONDS} s warm-up`,
  );
  console.log('');
  console.log('| workers | lookup req/s | vs 1 worker | p50 / p99 ms | non-2xx | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const { workers, result } of runs) {
    const ratio = requestsPerSecond(result) / requestsPerSecond(base.result);
    console.log(
      `| ${workers} | ${Math.round(requestsPerSecond(result)).toLocaleString('en')} | ${(100 * ratio).toFixed(0)}% | ` +
        `${result.latency.p50} / ${result.latency.p99} | ${result.non2xx} | ${result.errors} |`,
    );
  }
}
