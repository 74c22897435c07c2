import { Worker } from 'node:worker_threads';
import type { WarehouseRow } from '../core/warehouse-value.ts';
import { SQLITE_FULL_LOAD_CACHE_KIB, SQLITE_WRITER_PRAGMAS } from '../db.ts';
import { REJECT_COLUMNS, type RejectRow } from '../load/save-rejects.ts';
import type { BulkTarget, BulkWriter } from './dialect.ts';

/**
 * A batch crosses to the worker as JSON text: one string to copy instead of a structured clone
 * of every value, which cost the main thread more than reading the rows from the source.
 */

/** Batches handed to the worker and not yet written: enough to keep it busy, few enough to bound memory. */
const IN_FLIGHT = 3;

type Reply = { type: 'ready' | 'written' | 'closed' } | { type: 'failed'; message: string; code?: string };

interface Deferred {
  resolve(): void;
  reject(err: Error): void;
}

function failure(reply: { message: string; code?: string }): Error {
  return Object.assign(new Error(reply.message), reply.code === undefined ? {} : { code: reply.code });
}

/**
 * SQLite writes on one core: a full load that reads, maps and inserts on the main thread uses
 * one of the machine's cores. Here the inserts run on a worker thread with a connection of its
 * own to the same file, while the main thread reads and maps the next batches. Every message
 * the worker answers in order (ready, written per batch, closed), so one queue of promises
 * follows it; the first failure rejects them all and every later call.
 */
export async function openSqliteWorkerWriter(filename: string, target: BulkTarget): Promise<BulkWriter> {
  const worker = new Worker(new URL('./sqlite-bulk-worker.mjs', import.meta.url), {
    // Plain JavaScript: no TypeScript loader (and no loader thread) inherited from the parent.
    execArgv: [],
    workerData: {
      filename,
      pragmas: [...SQLITE_WRITER_PRAGMAS, `cache_size = -${SQLITE_FULL_LOAD_CACHE_KIB}`],
      table: target.table,
      columns: target.columns,
      booleanColumns: target.booleanColumns ?? [],
      rejectColumns: REJECT_COLUMNS,
    },
  });
  const waiting: Deferred[] = [];
  const state: { failed: Error | null; closed: boolean } = { failed: null, closed: false };
  const expectReply = () =>
    new Promise<void>((resolve, reject) => {
      if (state.failed !== null) reject(state.failed);
      else waiting.push({ resolve, reject });
    });
  const fail = (err: Error) => {
    state.failed ??= err;
    for (const deferred of waiting.splice(0)) deferred.reject(state.failed);
    void worker.terminate();
  };
  worker.on('message', (reply: Reply) => {
    if (reply.type === 'failed') fail(failure(reply));
    else waiting.shift()?.resolve();
  });
  worker.on('error', (err) => fail(err));
  worker.on('exit', (code) => {
    if (!state.closed) fail(new Error(`the SQLite bulk-load worker stopped (exit code ${code})`));
  });
  const inFlight: Array<Promise<void>> = [];
  const throwIfFailed = () => {
    if (state.failed !== null) throw state.failed;
  };
  await expectReply();
  return {
    async write(rows: WarehouseRow[], rejects: RejectRow[] = []) {
      throwIfFailed();
      const written = expectReply();
      written.catch(() => undefined);
      worker.postMessage({ type: 'batch', rows: JSON.stringify(rows), rejects });
      inFlight.push(written);
      if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
    },
    async close() {
      await Promise.all(inFlight.splice(0));
      throwIfFailed();
      const closed = expectReply();
      state.closed = true;
      worker.postMessage({ type: 'close' });
      await closed;
    },
    async abort() {
      // The rejects of a failed run are kept: the batches already handed over (their rejects
      // with them) are written before the worker stops. Terminated at once, it lost up to
      // IN_FLIGHT batches of them whenever it ran behind the reader.
      await Promise.allSettled(inFlight.splice(0));
      state.closed = true;
      await worker.terminate();
    },
  };
}
