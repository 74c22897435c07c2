/**
 * How long a serving SQLite hub's event loop stops for the WAL: the audit events of five person
 * lookups a turn, written as the API writes them (the audit writer's turn, on the API's reader
 * connection), one turn every 3 ms, with SQLite's autocheckpoint alone and with the serving
 * hub's checkpoint thread, alternated. Prints the event loop's delay (what every request in
 * flight waits) and the process's CPU.
 *
 * Then the same turns for a few seconds while the serving hub's who-read index thread puts
 * 640,000 subject rows into runs and merges them (a few dozen transactions in a row, each
 * holding SQLite's write lock), with the pause it leaves after each transaction and without,
 * alternated. Prints how long the turns took, which every answer of a turn waits.
 * `npm run bench:turns [-- --turns N]` (default 3,000 turns).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startWhoReadIndexingThread } from '../../server/services/who-read-index-thread.ts';
import { AuditWriter } from '../../warehouse/audit/audit-writer.ts';
import { recordAudit, type AuditEvent } from '../../warehouse/audit/record-audit.ts';
import { fetchIndexedUpTo, WHO_READ_RUNS } from '../../warehouse/audit/who-read-index.ts';
import { systemClock } from '../../warehouse/core/clock.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../warehouse/db.ts';
import { startServingCheckpoints } from '../../warehouse/dialects/sqlite-serving-checkpoints.ts';
import { SQLITE_PAUSE_BETWEEN_STEPS_MS } from '../../warehouse/dialects/sqlite-turn-writer.ts';
import { migrateWarehouse } from '../../warehouse/migrations/migrate.ts';
import { PreparedReads } from '../../warehouse/prepared-reads.ts';
import { CSPD_GRANTED_COLUMNS } from './api-shape.ts';

const LOOKUPS_PER_TURN = 5;
const PACE_MS = 3;
const turnsArg = process.argv.indexOf('--turns');
const TURNS = turnsArg > 0 ? Number(process.argv[turnsArg + 1]) : 3000;

/** A person lookup's audit event as the API writes it: the columns it disclosed, its subject. */
const COLUMNS = CSPD_GRANTED_COLUMNS.flatMap((c) =>
  ['cspd_personal_info', 'dvld_vehicles', 'naf_households'].map((t) => `${t}.${c}`),
);

function lookupEvent(n: number): AuditEvent {
  const nationalId = String(1_000_000_000 + ((n * 7_919) % 1_000_000));
  return {
    actor: 'naf-bench',
    entity: 'NAF',
    action: 'api.call',
    target: 'GET /api/v1/persons/{national_id}',
    details: {
      status: 200,
      ip: '127.0.0.1',
      request_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      params: { national_id: nationalId },
      columns: COLUMNS,
      tables: ['cspd_personal_info', 'dvld_vehicles', 'naf_households'],
      rows: 3,
    },
    subjects: [nationalId],
  };
}

interface Measured {
  mode: string;
  p99: number;
  p999: number;
  max: number;
  over3: number;
  cpuMs: number;
}

interface TurnsWarehouse {
  url: string;
  warehouse: Warehouse;
  /** Resolves once the turn's events are committed, as a turn's answers wait for theirs. */
  writeTurn: (turn: number) => Promise<unknown>;
}

/**
 * A new migrated SQLite warehouse in a folder of its own, with the API's audit writer, whose
 * turns are written on the kept reader connection as in the server; removed afterwards.
 * `seed` writes what the measurement needs before the reader is opened.
 */
async function withTurnsWarehouse<T>(
  firstEvent: number,
  seed: (warehouse: Warehouse) => Promise<void>,
  measureIn: (turns: TurnsWarehouse) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-turns-bench-'));
  const url = `sqlite:${path.join(dir, 'hub.sqlite')}`;
  const warehouse = openWarehouse(url);
  const reads = new PreparedReads(warehouse);
  const audit = new AuditWriter(warehouse.knex, systemClock);
  try {
    await migrateWarehouse(warehouse.knex);
    await seed(warehouse);
    await reads.first('SELECT 1', []);
    const writeTurn = (turn: number) =>
      Promise.all(
        Array.from({ length: LOOKUPS_PER_TURN }, (_, i) =>
          audit.append(lookupEvent(firstEvent + turn * LOOKUPS_PER_TURN + i)),
        ),
      );
    return await measureIn({ url, warehouse, writeTurn });
  } finally {
    await audit.close();
    await reads.close();
    await closeWarehouse(warehouse);
    await rm(dir, { recursive: true, force: true });
  }
}

const nothingToSeed = () => Promise.resolve();

async function measure(mode: 'autocheckpoint' | 'thread'): Promise<Measured> {
  return withTurnsWarehouse(0, nothingToSeed, async ({ warehouse, writeTurn }) => {
    const thread = mode === 'thread' ? await startServingCheckpoints(warehouse) : null;
    const delay = monitorEventLoopDelay({ resolution: 1 });
    const blocks: number[] = [];
    const cpu = process.cpuUsage();
    delay.enable();
    for (let turn = 0; turn < TURNS; turn++) {
      const started = performance.now();
      await writeTurn(turn);
      blocks.push(performance.now() - started);
      await sleep(PACE_MS);
    }
    delay.disable();
    const used = process.cpuUsage(cpu);
    await thread?.stop();
    const ms = (ns: number) => ns / 1e6;
    return {
      mode,
      p99: ms(delay.percentile(99)),
      p999: ms(delay.percentile(99.9)),
      max: ms(delay.max),
      over3: blocks.filter((b) => b > 3).length,
      cpuMs: (used.user + used.system) / 1000,
    };
  });
}

/** Enough subject rows for 32 runs of the default 20,000, which makes a merge due. */
const SEED_EVENTS = 64_000;
const SUBJECTS_PER_SEED_EVENT = 10;
const BESIDE_INDEXING_MS = 8_000;

interface MeasuredBesideIndexing {
  pauseMs: number;
  turns: number;
  p99: number;
  p999: number;
  max: number;
  over50: number;
  indexed: boolean;
  merged: boolean;
}

function seedEvent(n: number): AuditEvent {
  const subjects = Array.from({ length: SUBJECTS_PER_SEED_EVENT }, (_, k) =>
    String(1_000_000_000 + (((n * SUBJECTS_PER_SEED_EVENT + k) * 7_919) % 1_000_000)),
  );
  return { ...lookupEvent(n), subjects: [...new Set(subjects)] };
}

async function seedSubjectRows(warehouse: Warehouse): Promise<void> {
  for (let n = 0; n < SEED_EVENTS; n += 1_000)
    await recordAudit(
      warehouse.knex,
      systemClock,
      Array.from({ length: 1_000 }, (_, k) => seedEvent(n + k)),
    );
}

async function measureBesideIndexing(pauseMs: number): Promise<MeasuredBesideIndexing> {
  const quiet = () => undefined;
  return withTurnsWarehouse(SEED_EVENTS, seedSubjectRows, async ({ url, warehouse, writeTurn }) => {
    const lastSeeded = Number((await warehouse.knex('hub_audit').max({ id: 'id' }))[0]?.id);
    const checkpoints = await startServingCheckpoints(warehouse);
    const indexing = await startWhoReadIndexingThread(
      { databaseUrl: url, intervalMs: 100, index: { pauseMs } },
      { merged: quiet, failed: quiet, driver: quiet, exited: quiet },
    );
    // In microseconds: the histogram records integers.
    const took = createHistogram();
    let over50 = 0;
    const end = performance.now() + BESIDE_INDEXING_MS;
    for (let turn = 0; performance.now() < end; turn++) {
      const started = performance.now();
      await writeTurn(turn);
      const ms = performance.now() - started;
      took.record(Math.max(1, Math.round(ms * 1000)));
      if (ms > 50) over50 += 1;
      await sleep(PACE_MS);
    }
    await indexing.stop();
    await checkpoints?.stop();
    const levels = await warehouse
      .knex(WHO_READ_RUNS)
      .where({ state: 'live' })
      .distinct<Array<{ level: number }>>('level');
    const ms = (us: number) => us / 1000;
    return {
      pauseMs,
      turns: took.count,
      p99: ms(took.percentile(99)),
      p999: ms(took.percentile(99.9)),
      max: ms(took.max),
      over50,
      indexed: (await fetchIndexedUpTo(warehouse.knex)) >= lastSeeded,
      merged: levels.some((l) => l.level > 0),
    };
  });
}

async function main(): Promise<void> {
  const rows: Measured[] = [];
  for (const mode of ['autocheckpoint', 'thread', 'autocheckpoint', 'thread'] as const) {
    rows.push(await measure(mode));
  }
  console.log(
    `\n${TURNS.toLocaleString('en')} turns of ${LOOKUPS_PER_TURN} lookups' audit events, one every ${PACE_MS} ms, SQLite\n`,
  );
  console.log(
    '| WAL copied by | event-loop delay p99 ms | p99.9 ms | max ms | turns written in over 3 ms | process CPU ms |',
  );
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.mode === 'thread' ? 'the checkpoint thread' : "SQLite's autocheckpoint"} | ${r.p99.toFixed(1)} | ${r.p999.toFixed(1)} | ${r.max.toFixed(1)} | ${r.over3} | ${r.cpuMs.toFixed(0)} |`,
    );
  const beside: MeasuredBesideIndexing[] = [];
  for (const pauseMs of [SQLITE_PAUSE_BETWEEN_STEPS_MS, 0, SQLITE_PAUSE_BETWEEN_STEPS_MS, 0])
    beside.push(await measureBesideIndexing(pauseMs));
  console.log(
    `\nThe same turns for ${BESIDE_INDEXING_MS / 1000} s while the who-read index thread indexes and merges ${(SEED_EVENTS * SUBJECTS_PER_SEED_EVENT).toLocaleString('en')} subject rows\n`,
  );
  console.log(
    '| who-read indexing | turns | turn p99 ms | p99.9 ms | max ms | turns over 50 ms | all indexed | merged |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---|---|');
  for (const r of beside)
    console.log(
      `| ${r.pauseMs > 0 ? `${r.pauseMs} ms pause after each transaction` : 'no pause'} | ${r.turns} | ${r.p99.toFixed(1)} | ${r.p999.toFixed(1)} | ${r.max.toFixed(1)} | ${r.over50} | ${r.indexed ? 'yes' : 'no'} | ${r.merged ? 'yes' : 'no'} |`,
    );
}

await main();
