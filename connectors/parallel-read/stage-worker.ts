import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { ConnectorDefinition } from '../definition.ts';
import type { NationalIdRule } from '../../warehouse/core/national-id.ts';
import { buildRejectRows } from '../../warehouse/load/save-rejects.ts';
import {
  STAGE_REJECTS,
  STAGE_TABLE,
  STAGED_REJECT_COLUMNS,
  stageColumn,
  removeStageFile,
} from '../../warehouse/load/stage-file.ts';
import type { WarehouseRow } from '../../warehouse/core/warehouse-value.ts';
import type { SqliteTableLocation } from '../sources/source.ts';
import { rangeCount, RowidRangeReader, type RangePlan } from './rowid-ranges.ts';
import { TwoEndedClaims } from './two-ended-claims.ts';

/** What the loading thread hands this one: the table, the mapping, the plan, the claims, the run and the stage file to write. */
export interface StageWorkerData {
  location: SqliteTableLocation;
  def: ConnectorDefinition;
  rule: NationalIdRule;
  plan: RangePlan;
  /** The ranges, shared with the loading thread: this one takes them from the back. */
  claims: SharedArrayBuffer;
  run: { id: number; connector: string };
  stageFile: string;
  /** Deleted records are read as an incremental run reads them (RangeReadOptions). */
  incremental: boolean;
}

/** A range's counts and cursor: its rows and rejects are in the stage file, at rowids `k * width + i`. */
export interface StagedRange {
  k: number;
  read: number;
  rows: number;
  rejects: number;
  /** Keys of the range's deleted records (an incremental run's), which the stage does not hold. */
  deletes: WarehouseRow[];
  cursor: string | null;
}

export type StageMessage =
  ({ type: 'range' } & StagedRange) | { type: 'done' } | { type: 'failed'; message: string };

const port = parentPort;
if (port === null) throw new Error('stage-worker.ts runs as a worker thread');
const data = workerData as StageWorkerData;

interface Stage {
  db: Database.Database;
  insertRow: Database.Statement;
  insertReject: Database.Statement;
}

function openStage(columns: number): Stage {
  removeStageFile(data.stageFile);
  const db = new Database(data.stageFile);
  try {
    // A scratch file read once and then deleted: nothing to recover after a crash.
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('cache_size = -4096');
    const names = Array.from({ length: columns }, (_, i) => stageColumn(i));
    db.exec(`CREATE TABLE ${STAGE_TABLE} (${names.join(', ')})`);
    db.exec(`CREATE TABLE ${STAGE_REJECTS} (${STAGED_REJECT_COLUMNS.join(', ')})`);
    const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');
    return {
      db,
      insertRow: db.prepare(
        `INSERT INTO ${STAGE_TABLE} (rowid, ${names.join(', ')}) VALUES (?, ${placeholders(columns)})`,
      ),
      insertReject: db.prepare(
        `INSERT INTO ${STAGE_REJECTS} (rowid, ${STAGED_REJECT_COLUMNS.join(', ')}) VALUES (?, ${placeholders(STAGED_REJECT_COLUMNS.length)})`,
      ),
    };
  } catch (err) {
    db.close();
    throw err;
  }
}

function booleanPositions(columns: string[], def: ConnectorDefinition): number[] {
  return columns.flatMap((c, i) => (def.columns[c]?.type === 'boolean' ? [i] : []));
}

/** Takes ranges from the back until the two threads meet, writing each into the stage in one transaction. */
function run(): void {
  const reader = new RowidRangeReader(data.location, data.def, data.rule, { incremental: data.incremental });
  let stage: Stage | null = null;
  try {
    stage = openStage(reader.columns.length);
    const { db, insertRow, insertReject } = stage;
    const claims = new TwoEndedClaims(data.claims, rangeCount(data.plan));
    const booleans = booleanPositions(reader.columns, data.def);
    for (let k = claims.back(); k !== null; k = claims.back()) {
      const range = reader.mapRange(data.plan, k);
      const base = k * data.plan.width;
      db.transaction(() => {
        range.rows.forEach((row, i) => {
          // better-sqlite3 binds no booleans.
          for (const at of booleans) if (typeof row[at] === 'boolean') row[at] = row[at] ? 1 : 0;
          insertRow.run(base + i, ...row);
        });
        // Without the connector and run, the first two columns, which the writer gives them.
        buildRejectRows(data.run, range.rejects).forEach((reject, i) =>
          insertReject.run(base + i, ...reject.slice(2)),
        );
      })();
      port!.postMessage({
        type: 'range',
        k,
        read: range.read,
        rows: range.rows.length,
        rejects: range.rejects.length,
        deletes: range.deletes,
        cursor: range.cursor,
      } satisfies StageMessage);
    }
  } finally {
    stage?.db.close();
    reader.close();
  }
  port!.postMessage({ type: 'done' } satisfies StageMessage);
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
