/**
 * One measured load in a process of its own, so its peak RSS is its own. Prints one JSON line.
 *   ours-full | ours-incremental: the hub's connector run (`--full` or not)
 *   raw: what a person would write by hand, none of the hub's code: the source rows read with
 *        better-sqlite3 and written unchanged by the database's bulk path (one prepared INSERT
 *        in one transaction on SQLite, with the hub's pragmas; COPY FROM STDIN on PostgreSQL),
 *        then the national ID indexed
 */
import Database from 'better-sqlite3';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import pino from 'pino';
import { readConnectorDefinitions } from '../../connectors/definition.ts';
import { runConnector } from '../../connectors/run-connector.ts';
import { readConfig } from '../../server/config.ts';
import { closeContext, openContext } from '../../server/context.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';

interface Job {
  mode: 'ours-full' | 'ours-incremental' | 'raw';
  databaseUrl: string;
  connectorsDir: string;
  connector: string;
}

interface RawSource {
  file: string;
  table: string;
  /** Source fields the connector maps, in its column order. */
  fields: string[];
  nationalIdField: string;
}

const COPY_CHUNK = 5000;

async function runOurs(job: Job): Promise<{ rows: number; read: number; ms: number }> {
  const config = readConfig(
    { HUB_CONNECTORS: job.connectorsDir, HUB_DATA_DIR: job.connectorsDir },
    { databaseUrl: job.databaseUrl },
  );
  const ctx = openContext(config, { logger: pino({ level: 'silent' }) });
  try {
    const { connectors } = await prepareWarehouse(ctx);
    const def = connectors.find((d) => d.name === job.connector)!;
    const started = process.hrtime.bigint();
    const summary = await runConnector(def, ctx, { full: job.mode === 'ours-full' });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (summary.status !== 'succeeded') throw new Error(summary.error ?? 'run failed');
    return { rows: summary.inserted + summary.updated + summary.deleted, read: summary.read, ms };
  } finally {
    await closeContext(ctx);
  }
}

/**
 * The hub's SQLite pragmas for its writer connection (warehouse/db.ts), written out by hand, and
 * the sort helpers a full load's index builds get (sortHelperThreads in warehouse/dialects/sqlite.ts).
 */
function openSqliteLikeTheHub(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 15000');
  db.pragma('cache_size = -16384');
  db.pragma(`threads = ${availableParallelism() < 2 ? 0 : availableParallelism()}`);
  return db;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

function selectSource(source: RawSource): { db: Database.Database; rows: Iterable<unknown[]> } {
  const db = new Database(source.file, { readonly: true });
  const select = db
    .prepare(`SELECT ${source.fields.map(quote).join(', ')} FROM ${quote(source.table)}`)
    .raw(true);
  return { db, rows: select.iterate() as Iterable<unknown[]> };
}

function rawSqlite(job: Job, source: RawSource): number {
  const db = openSqliteLikeTheHub(job.databaseUrl.slice('sqlite:'.length));
  const from = selectSource(source);
  try {
    db.exec(`DROP TABLE IF EXISTS raw_bulk`);
    db.exec(`CREATE TABLE raw_bulk (${source.fields.map(quote).join(', ')})`);
    const insert = db.prepare(`INSERT INTO raw_bulk VALUES (${source.fields.map(() => '?').join(', ')})`);
    let rows = 0;
    db.transaction(() => {
      for (const row of from.rows) {
        insert.run(row);
        rows++;
      }
    })();
    db.exec(`CREATE INDEX raw_bulk_nid ON raw_bulk (${quote(source.nationalIdField)})`);
    return rows;
  } finally {
    from.db.close();
    db.close();
  }
}

function copyText(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  return (typeof value === 'string' ? value : (value as number).toString()).replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  );
}

async function rawPostgres(job: Job, source: RawSource): Promise<number> {
  const client = new pg.Client({ connectionString: job.databaseUrl });
  await client.connect();
  const from = selectSource(source);
  try {
    await client.query('DROP TABLE IF EXISTS raw_bulk');
    await client.query(`CREATE TABLE raw_bulk (${source.fields.map((f) => `${quote(f)} text`).join(', ')})`);
    const stream = client.query(copyFrom('COPY raw_bulk FROM STDIN'));
    const failed = once(stream, 'error').then(([err]) => Promise.reject(err as Error));
    failed.catch(() => undefined);
    let rows = 0;
    let text = '';
    for (const row of from.rows) {
      text += row.map(copyText).join('\t') + '\n';
      if (++rows % COPY_CHUNK === 0) {
        if (!stream.write(text)) await Promise.race([once(stream, 'drain'), failed]);
        text = '';
      }
    }
    stream.end(text);
    await Promise.race([once(stream, 'finish'), failed]);
    await client.query(`CREATE INDEX raw_bulk_nid ON raw_bulk (${quote(source.nationalIdField)})`);
    return rows;
  } finally {
    from.db.close();
    await client.end();
  }
}

async function runRaw(job: Job): Promise<{ rows: number; read: number; ms: number }> {
  const def = (await readConnectorDefinitions(job.connectorsDir)).find((d) => d.name === job.connector)!;
  if (def.source.kind !== 'sql' || def.source.table === undefined || def.source.client !== 'better-sqlite3')
    throw new Error('the raw path reads a better-sqlite3 source table');
  const connection = def.source.connection;
  const filename = typeof connection === 'string' ? connection : String(connection['filename']);
  const source: RawSource = {
    file: path.resolve(path.dirname(def.file), filename),
    table: def.source.table,
    fields: Object.entries(def.columns).map(([name, c]) => c.from ?? name),
    nationalIdField: def.columns[def.target.national_id]!.from ?? def.target.national_id,
  };
  const started = process.hrtime.bigint();
  const rows = job.databaseUrl.startsWith('sqlite:')
    ? rawSqlite(job, source)
    : await rawPostgres(job, source);
  return { rows, read: rows, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

// Timed from the first read of the source to the committed load; process start-up and the
// hub's schema check are not part of either side.
const job = JSON.parse(process.argv[2] ?? '{}') as Job;
const result = job.mode === 'raw' ? await runRaw(job) : await runOurs(job);
process.stdout.write(`${JSON.stringify({ ...result, maxRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
