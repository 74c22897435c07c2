import { parentPort, workerData } from 'node:worker_threads';
import type { ConnectorDefinition } from '../definition.ts';
import type { NationalIdRule } from '../../warehouse/core/national-id.ts';
import type { SqliteTableLocation } from '../sources/source.ts';
import {
  claimRange,
  rangeCount,
  RowidRangeReader,
  type EncodedRange,
  type RangePlan,
} from './rowid-ranges.ts';

/** What the main thread hands this one: the table, the mapping, the plan and the shared claim counter. */
export interface RangeWorkerData {
  location: SqliteTableLocation;
  def: ConnectorDefinition;
  rule: NationalIdRule;
  plan: RangePlan;
  /** One Int32: the next range not yet claimed by either thread. */
  claims: SharedArrayBuffer;
  /** Ranges it may have handed over and not yet seen taken: the memory a slow writer lets it fill. */
  ahead: number;
  /** Deleted records are read as an incremental run reads them (RangeReadOptions). */
  incremental: boolean;
}

export type RangeMessage =
  ({ type: 'range'; k: number } & EncodedRange) | { type: 'done' } | { type: 'failed'; message: string };

const port = parentPort;
if (port === null) throw new Error('range-worker.ts runs as a worker thread');
const data = workerData as RangeWorkerData;
const claims = new Int32Array(data.claims);
const total = rangeCount(data.plan);

/**
 * Rejects cross as JSON values: what the main thread writes of them (JSON text) is then what it
 * would have written of the record itself (a BLOB as a Buffer, not the Uint8Array a clone makes).
 */
const asJsonValue = (value: unknown): unknown => JSON.parse(JSON.stringify(value) ?? 'null') as unknown;

let reader: RowidRangeReader | null = null;
let allowed = data.ahead;

/** Claims and encodes ranges while the main thread has room for them; says when none is left. */
function step(): void {
  try {
    reader ??= new RowidRangeReader(data.location, data.def, data.rule, { incremental: data.incremental });
    while (allowed > 0) {
      const k = claimRange(claims, total);
      if (k === null) {
        reader.close();
        reader = null;
        port!.postMessage({ type: 'done' } satisfies RangeMessage);
        port!.close();
        return;
      }
      const range = reader.encodeRange(data.plan, k);
      range.rejects = range.rejects.map((r) => ({ ...r, raw: asJsonValue(r.raw) }));
      const message: RangeMessage = { type: 'range', k, ...range };
      // Handed over, not copied: the text is a view of a buffer of its own (encodeCopyRows never
      // takes one from Node's shared pool of small buffers), which the main thread then owns.
      port!.postMessage(message, [range.copyText.buffer as ArrayBuffer]);
      allowed--;
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    port!.postMessage({ type: 'failed', message } satisfies RangeMessage);
    port!.close();
  }
}

port.on('message', () => {
  allowed++;
  step();
});
step();
