import { rmSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { ConnectorDefinition } from '../definition.ts';
import type { NationalIdRule } from '../../warehouse/core/national-id.ts';
import type { RejectInput } from '../../warehouse/load/load-types.ts';
import { STAGE_TABLE, stageColumn } from '../../warehouse/load/stage-file.ts';
import type { SqliteTableLocation } from '../sources/source.ts';
import { rangeCount, RowidRangeReader, type RangePlan } from './rowid-ranges.ts';
import { TwoEndedClaims } from './two-ended-claims.ts';

/** What the loading thread hands this one: the table, the mapping, the plan, the claims and the stage file to write. */
export interface StageWorkerData {
  location: SqliteTableLocation;
  def: ConnectorDefinition;
  rule: NationalIdRule;
  plan: RangePlan;
  /** The ranges, shared with the loading thread: this one takes them from the back. */
  claims: SharedArrayBuffer;
  stageFile: string;
}

/** A range's counts, rejects and cursor: its rows are in the stage file, at rowids `k * width + i`. */
export interface StagedRange {
  k: number;
  read: number;
  rows: number;
  rejects: RejectInput[];
  cursor: string | null;
}

export type StageMessage =
  ({ type: 'range' } & StagedRange) | { type: 'done' } | { type: 'failed'; message: string };

const port = parentPort;
if (port === null) throw new Error('stage-worker.ts runs as a worker thread');
const data = workerData as StageWorkerData;

/** Rejects cross as JSON values, as the one-thread path would write them (a BLOB as a Buffer, not a Uint8Array). */
const asJsonValue = (value: unknown): unknown => JSON.parse(JSON.stringify(value) ?? 'null') as unknown;

function openStage(columns: number): { db: Database.Database; insert: Database.Statement } {
  for (const suffix of ['', '-journal']) rmSync(data.stageFile + suffix, { force: true });
  const db = new Database(data.stageFile);
  // A scratch file read once and then deleted: nothing to recover after a crash.
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('cache_size = -4096');
  const names = Array.from({ length: columns }, (_, i) => stageColumn(i));
  db.exec(`CREATE TABLE ${STAGE_TABLE} (${names.join(', ')})`);
  const insert = db.prepare(
    `INSERT INTO ${STAGE_TABLE} (rowid, ${names.join(', ')}) VALUES (?, ${names.map(() => '?').join(', ')})`,
  );
  return { db, insert };
}

function run(): void {
  const reader = new RowidRangeReader(data.location, data.def, data.rule);
  const claims = new TwoEndedClaims(data.claims, rangeCount(data.plan));
  const booleans = booleanPositions(reader.columns, data.def);
  const stage = openStage(reader.columns.length);
  try {
    for (let k = claims.back(); k !== null; k = claims.back()) {
      const range = reader.mapRange(data.plan, k);
      const base = k * data.plan.width;
      stage.db.transaction(() => {
        range.rows.forEach((row, i) => {
          // better-sqlite3 binds no booleans.
          for (const at of booleans) if (typeof row[at] === 'boolean') row[at] = row[at] ? 1 : 0;
          stage.insert.run(base + i, ...row);
        });
      })();
      const message: StageMessage = {
        type: 'range',
        k,
        read: range.read,
        rows: range.rows.length,
        rejects: range.rejects.map((r) => ({ ...r, raw: asJsonValue(r.raw) })),
        cursor: range.cursor,
      };
      port!.postMessage(message);
    }
  } finally {
    stage.db.close();
    reader.close();
  }
  port!.postMessage({ type: 'done' } satisfies StageMessage);
}

function booleanPositions(columns: string[], def: ConnectorDefinition): number[] {
  return columns.flatMap((c, i) => (def.columns[c]?.type === 'boolean' ? [i] : []));
}

try {
  run();
} catch (err) {
  port.postMessage({
    type: 'failed',
    message: err instanceof Error ? err.message : String(err),
  } satisfies StageMessage);
}
port.close();
