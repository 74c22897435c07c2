import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { ConnectorDefinition } from '../definition.ts';
import type { NationalIdRule } from '../../warehouse/core/national-id.ts';
import type { LoadBatch } from '../../warehouse/load/load-types.ts';
import type { SqliteTableLocation } from '../sources/source.ts';
import type { RangeMessage, RangeWorkerData } from './range-worker.ts';
import { startSecondThread } from './second-thread.ts';
import {
  claimRange,
  foldCursor,
  rangeCount,
  RowidRangeReader,
  type EncodedRange,
  type RangePlan,
  type RangeReadOptions,
} from './rowid-ranges.ts';

/**
 * Rowids a range covers: a range's rows are garbage soon after they are encoded, and at 1,000
 * they die young (2,000 took longer and 10 MB more at 1,000,000 demo citizens; 500 no better).
 */
const RANGE_WIDTH = 1000;
/** Ranges the second thread may encode ahead of the writer: a few hundred KB of COPY text. */
const AHEAD = 4;
/** Below this many rows, starting a thread (and its TypeScript loader) costs more than it saves. */
export const TWO_THREAD_MIN_ROWS = 100_000;

export interface TwoThreadOptions {
  /** The second thread's entry point; a test names one that fails. */
  workerUrl?: URL;
  /** Fewer rowids than this are read on one thread. */
  minRows?: number;
  /** Told which thread encoded each range, in range order. */
  onRange?: (thread: 'main' | 'worker') => void;
  /** Deleted records are read as an incremental run reads them (RangeReadOptions). */
  incremental?: boolean;
}

/**
 * A full load's records from a SQLite table (or a first incremental run's, with `incremental`:
 * deleted records as deletions), read, mapped and encoded as COPY text by two threads, range of
 * rowids by range: each thread claims the next range nobody has from a counter
 * they share, and the batches come out in range order, so the rows reach the table in the order
 * one thread would have written them. This thread also writes them, so it claims a range only
 * while the next one due is still being encoded by the worker: the split follows what each
 * thread has time for. Only encoded text crosses between them (handed over, not copied): a
 * clone of the rows themselves cost the reading thread more than mapping them.
 *
 * Both threads must read one state of the file. Each reads inside a transaction of its own,
 * and a third connection's `data_version`, read before this thread's transaction starts and
 * again once the worker has read, tells whether anything was committed in between; if so, or
 * if the worker cannot start or fails, this thread encodes every range the worker has not
 * handed over, in its own transaction. A table that cannot be read by rowid, or a small one, is
 * read by `oneThread`.
 */
export async function* readInTwoThreads(
  def: ConnectorDefinition,
  rule: NationalIdRule,
  location: SqliteTableLocation,
  cursors: { records: string | null },
  oneThread: () => AsyncIterable<LoadBatch>,
  options: TwoThreadOptions = {},
): AsyncIterable<LoadBatch> {
  const opened = openRangeReaders(def, rule, location, options.minRows ?? TWO_THREAD_MIN_ROWS, {
    incremental: options.incremental === true,
  });
  if (opened === null) {
    yield* oneThread();
    return;
  }
  const { reader, probe, plan } = opened;
  const total = rangeCount(plan);
  const claims = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  let worker = RangeWorker.start(options.workerUrl ?? new URL('./range-worker.cjs', import.meta.url), {
    location,
    def,
    rule,
    plan,
    claims: claims.buffer,
    ahead: AHEAD,
    // The worker reads deleted records as this thread's reader does.
    incremental: reader.incremental,
  });
  /** Ranges this thread has encoded ahead of the one due. */
  const own = new Map<number, EncodedRange>();
  let checked = false;
  try {
    for (let k = 0; k < total; k++) {
      let range = takeOwn(own, k);
      let by: 'main' | 'worker' = 'main';
      while (range === null) {
        if (worker !== null) {
          range = worker.take(k);
          if (range !== null && !checked) {
            checked = true;
            // The worker's ranges are used only if it read the state this thread reads.
            if (probe.changedSinceStart()) range = null;
            if (range === null) worker.end();
          }
          if (range !== null) {
            by = 'worker';
            break;
          }
          if (worker.gone) {
            await worker.stop();
            worker = null;
          }
        }
        if (worker === null) {
          // Alone: what the worker claimed and did not hand over is encoded here.
          range = reader.encodeRange(plan, k);
          break;
        }
        const mine = own.size < AHEAD ? claimRange(claims, total) : null;
        if (mine === null) {
          await worker.arrival();
          continue;
        }
        own.set(mine, reader.encodeRange(plan, mine));
        // This thread's reads never wait on I/O: a turn of the event loop lets API requests in,
        // and the worker's messages.
        await new Promise<void>((resolve) => setImmediate(resolve));
        range = takeOwn(own, k);
      }
      foldCursor(cursors, range);
      options.onRange?.(by);
      yield {
        read: range.read,
        rows: [],
        rejects: range.rejects,
        deletes: range.deletes,
        copyText: { bytes: range.copyText, rows: range.rows },
      };
    }
  } finally {
    await worker?.stop();
    reader.close();
    probe.close();
  }
}

function takeOwn(own: Map<number, EncodedRange>, k: number): EncodedRange | null {
  const range = own.get(k);
  if (range === undefined) return null;
  own.delete(k);
  return range;
}

/** A table's reader in its read transaction, the probe opened before it, and the ranges that cover the table. */
export interface RangeReaders {
  reader: RowidRangeReader;
  probe: ChangeProbe;
  plan: RangePlan;
}

/**
 * The readers of a table read in ranges by two threads, or null for a table that cannot be read
 * by rowid or has fewer than `minRows` rowids (the caller reads it on one thread).
 */
export function openRangeReaders(
  def: ConnectorDefinition,
  rule: NationalIdRule,
  location: SqliteTableLocation,
  minRows: number,
  options: RangeReadOptions = {},
): RangeReaders | null {
  let probe: ChangeProbe | null = null;
  let reader: RowidRangeReader | null = null;
  try {
    probe = new ChangeProbe(location.filename);
    reader = new RowidRangeReader(location, def, rule, options);
    const plan = reader.plan(location.table, Math.min(RANGE_WIDTH, def.batch_size));
    if (plan !== null && plan.last - plan.first + 1 >= minRows && rangeCount(plan) >= 2)
      return { reader, probe, plan };
  } catch {
    // Whatever keeps the file from being read this way, the one-thread path reads it or says why.
  }
  reader?.close();
  probe?.close();
  return null;
}

export function closeRangeReaders({ reader, probe }: RangeReaders): void {
  reader.close();
  probe.close();
}

/** Whether another connection has committed to the file since this one was opened. */
export class ChangeProbe {
  private readonly db: Database.Database;
  private readonly start: number;

  constructor(filename: string) {
    this.db = new Database(filename, { readonly: true, fileMustExist: true });
    this.start = this.version();
  }

  private version(): number {
    return Number(this.db.pragma('data_version', { simple: true }));
  }

  changedSinceStart(): boolean {
    return this.version() !== this.start;
  }

  close(): void {
    this.db.close();
  }
}

/** The worker thread and the ranges it has handed over that this thread has not taken yet. */
class RangeWorker {
  private readonly received = new Map<number, EncodedRange>();
  private ended = false;
  private wake: (() => void) | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (message: RangeMessage) => {
      if (message.type === 'range') {
        const bytes = message.copyText;
        this.received.set(message.k, {
          ...message,
          copyText: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        });
      } else if (message.type === 'failed') this.ended = true;
      this.wake?.();
    });
  }

  /** A worker, or null when it cannot be started. */
  static start(url: URL, data: RangeWorkerData): RangeWorker | null {
    return startSecondThread(url, data, (worker) => new RangeWorker(worker));
  }

  /** Told by startSecondThread when the thread fails or exits. */
  stopped(): void {
    this.ended = true;
    this.wake?.();
  }

  /** Whether it stopped, having handed over everything it will (a finished worker has too). */
  get gone(): boolean {
    return this.ended && this.received.size === 0;
  }

  /** Range `k` if the worker has handed it over; the worker may then claim one more. */
  take(k: number): EncodedRange | null {
    const range = this.received.get(k);
    if (range === undefined) return null;
    this.received.delete(k);
    if (!this.ended) this.worker.postMessage('more');
    return range;
  }

  /** Resolves at the worker's next message or when it stops. */
  arrival(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  /** Nothing more of it is taken: what it handed over is dropped, and it counts as gone. */
  end(): void {
    this.ended = true;
    this.received.clear();
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.end();
    await this.worker.terminate();
  }
}
