/**
 * What a bad token request costs the hub: CPU per failed request (HMAC path), per throttled
 * request (429), next to one scrypt verification (what every failure cost when client secrets
 * were scrypt hashes). `node --import tsx tests/bench/token-failures.bench.ts [--requests N]`
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildApp } from '../../server/app.ts';
import { readConfig } from '../../server/config.ts';
import { closeContext, openContext } from '../../server/context.ts';
import { createClient } from '../../server/services/client-service.ts';
import { hashSecret, verifySecret } from '../../server/services/password-hash.ts';
import { MAX_FAILURES_PER_ADDRESS } from '../../server/services/token-throttle.ts';
import { migrateWarehouse } from '../../warehouse/migrations/migrate.ts';

const requestsArg = process.argv.indexOf('--requests');
const THROTTLED = requestsArg > 0 ? Number(process.argv[requestsArg + 1]) : 1000;

const cpuMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-token-bench-'));
  const ctx = openContext(readConfig({ HUB_DATA_DIR: dir, LOG_LEVEL: 'silent' }));
  try {
    await migrateWarehouse(ctx.knex);
    await ctx.knex('hub_entities').insert({ code: 'NAF', label_en: 'Aid', label_ar: 'المعونة' });
    const client = await createClient(ctx, { entity: 'NAF' }, 'bench');
    const server = createServer(buildApp(ctx)).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/token`;
    const bad = (i: number) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          grant_type: 'client_credentials',
          client_id: `naf-x${i}`,
          client_secret: 'guess',
        }),
      }).then(async (r) => {
        await r.text();
        return r.status;
      });

    // No warm-up: every request from this address counts toward its limit.
    let since = process.cpuUsage();
    const failed: number[] = [];
    for (let i = 0; i < MAX_FAILURES_PER_ADDRESS; i += 1) failed.push(await bad(i));
    const failedMs = cpuMs(since);
    since = process.cpuUsage();
    const throttled: number[] = [];
    for (let i = 0; i < THROTTLED; i += 1) throttled.push(await bad(1000 + i));
    const throttledMs = cpuMs(since);

    const stored = await hashSecret('x');
    since = process.cpuUsage();
    const scryptRuns = 5;
    for (let i = 0; i < scryptRuns; i += 1) await verifySecret('y', stored);
    const scryptMs = cpuMs(since) / scryptRuns;

    const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;
    console.log(`client ${client.client_id}; hub and client in one process (CPU of both, loopback)`);
    console.log(
      `failed (401): ${failed.length} requests, ${count(failed, 401)} answered 401, ${(failedMs / failed.length).toFixed(2)} ms CPU each`,
    );
    console.log(
      `throttled (429): ${throttled.length} requests, ${count(throttled, 429)} answered 429, ${(throttledMs / throttled.length).toFixed(2)} ms CPU each`,
    );
    console.log(`one scrypt verification (N=2^15, r=8, p=3): ${scryptMs.toFixed(1)} ms CPU`);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  } finally {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
