/**
 * One measured load in a process of its own, so its peak RSS is its own. Prints one JSON line.
 *   ours-full | ours-incremental: the hub's connector run
 *   raw: the same source rows written by the database's raw bulk path (prepared inserts in one
 *        transaction on SQLite, COPY on PostgreSQL) into a table with the same national ID index
 */
import Database from 'better-sqlite3';
import { once } from 'node:events';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import pino from 'pino';
import { readConnectorDefinitions, type ConnectorDefinition } from '../../connectors/definition.ts';
import { runConnector } from '../../connectors/run-connector.ts';
import { openSource } from '../../connectors/sources/open-source.ts';
import type { SourceRecord } from '../../connectors/sources/source.ts';
import { readConfig } from '../../server/config.ts';
import { closeContext, openContext } from '../../server/context.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';
import { toSourceText } from '../../warehouse/core/source-text.ts';
import { encodeCopyRows } from '../../warehouse/dialects/postgres.ts';

interface Job {
  mode: 'ours-full' | 'ours-incremental' | 'raw';
  databaseUrl: string;
  connectorsDir: string;
  connector: string;
}

const BATCH = 5000;

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

async function* recordBatches(def: ConnectorDefinition): AsyncIterable<SourceRecord[]> {
  const source = openSource(def);
  try {
    let batch: SourceRecord[] = [];
    for await (const record of source.read({ since: null })) {
      batch.push(record);
      if (batch.length === BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  } finally {
    await source.close();
  }
}

async function runRawSqlite(
  job: Job,
  def: ConnectorDefinition,
  fields: string[],
  nidField: string,
): Promise<number> {
  const db = new Database(job.databaseUrl.slice('sqlite:'.length));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`DROP TABLE IF EXISTS raw_bulk; CREATE TABLE raw_bulk (${fields.map((f) => `"${f}"`).join(', ')})`);
  const insert = db.prepare(`INSERT INTO raw_bulk VALUES (${fields.map(() => '?').join(', ')})`);
  let rows = 0;
  db.exec('BEGIN');
  for await (const batch of recordBatches(def)) {
    for (const record of batch) insert.run(fields.map((f) => toSourceText(record[f])));
    rows += batch.length;
  }
  db.exec(`CREATE INDEX raw_bulk_nid ON raw_bulk ("${nidField}")`);
  db.exec('COMMIT');
  db.close();
  return rows;
}

async function runRawPostgres(
  job: Job,
  def: ConnectorDefinition,
  fields: string[],
  nidField: string,
): Promise<number> {
  const client = new pg.Client({ connectionString: job.databaseUrl });
  await client.connect();
  try {
    await client.query(
      `DROP TABLE IF EXISTS raw_bulk; CREATE TABLE raw_bulk (${fields.map((f) => `"${f}" text`).join(', ')})`,
    );
    const stream = client.query(copyFrom(`COPY raw_bulk FROM STDIN`));
    let rows = 0;
    for await (const batch of recordBatches(def)) {
      if (!stream.write(encodeCopyRows(batch.map((r) => fields.map((f) => toSourceText(r[f]))))))
        await once(stream, 'drain');
      rows += batch.length;
    }
    stream.end();
    await once(stream, 'finish');
    await client.query(`CREATE INDEX raw_bulk_nid ON raw_bulk ("${nidField}")`);
    return rows;
  } finally {
    await client.end();
  }
}

async function runRaw(job: Job): Promise<{ rows: number; read: number; ms: number }> {
  const started = process.hrtime.bigint();
  const def = (await readConnectorDefinitions(job.connectorsDir)).find((d) => d.name === job.connector)!;
  const fields = Object.values(def.columns).map((c, i) => c.from ?? Object.keys(def.columns)[i]!);
  if (def.source.kind === 'sql' && def.source.cursor) fields.push(def.source.cursor);
  const nidField = def.columns[def.target.national_id]!.from ?? def.target.national_id;
  const rows = job.databaseUrl.startsWith('sqlite:')
    ? await runRawSqlite(job, def, fields, nidField)
    : await runRawPostgres(job, def, fields, nidField);
  return { rows, read: rows, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

// Timed from the first read of the source to the committed load; process start-up and the
// hub's schema check are not part of either side.
const job = JSON.parse(process.argv[2] ?? '{}') as Job;
const result = job.mode === 'raw' ? await runRaw(job) : await runOurs(job);
process.stdout.write(`${JSON.stringify({ ...result, maxRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
