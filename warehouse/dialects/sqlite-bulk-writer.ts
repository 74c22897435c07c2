import { Worker } from 'node:worker_threads';
import type { WarehouseRow, WarehouseValue } from '../core/warehouse-value.ts';
import { SQLITE_FULL_LOAD_CACHE_KIB, SQLITE_WRITER_PRAGMAS } from '../db.ts';
import { REJECT_COLUMNS, type RejectRow } from '../load/save-rejects.ts';
import type { BulkTarget, BulkWriter } from './dialect.ts';

/**
 * A batch crosses to the worker as JSON text: one string to copy instead of a structured clone
 * of every value, which cost the main thread more than reading the rows from the source. It
 * crosses in pieces, each a message of its own, of at most this many rows and about this much
 * text: the strings stay small and die young on both threads instead of being promoted, the
 * worker starts inserting while the next piece is encoded, and its memory no longer follows the
 * connector's batch size. At 1,000,000 demo citizens, one message per 2,000-row batch took 5.4 s
 * to write the rows and 220–243 MB peak RSS; pieces, 4.3 s and 174–188 MB.
 */
const ROWS_PER_PIECE = 256;
const PIECE_CHARS = 1 << 20;

/** Worker heap limits: a piece needs little, and without them V8 lets the worker's garbage grow by tens of MB. */
const WORKER_OLD_GENERATION_MB = 16;
const WORKER_YOUNG_GENERATION_MB = 4;

/**
 * A row longer than a piece crosses alone, and its long strings as UTF-8 bytes: an ArrayBuffer
 * handed over lives outside the thread's capped heap, where a 40 MB string, parsed from JSON or
 * cloned, ran it out of memory and took the whole process down with it. The thread inserts
 * those values with `CAST(? AS TEXT)`, which reads the bytes as text in the database's UTF-8.
 */
const BYTES_FROM_CHARS = 4096;

/** A value as it crosses: long strings as bytes (their indexes in `bytesAt`). */
type CrossingValue = WarehouseValue | Uint8Array;

interface LargeRow {
  row: CrossingValue[];
  bytesAt: number[];
}

type Piece = { rows: string } | { large: LargeRow };

const utf8 = new TextEncoder();

/** The row with each string of BYTES_FROM_CHARS or more characters as bytes of its own. */
function toLargeRow(row: readonly WarehouseValue[]): LargeRow {
  const bytesAt: number[] = [];
  const crossing = row.map((value, i): CrossingValue => {
    if (typeof value !== 'string' || value.length < BYTES_FROM_CHARS) return value;
    bytesAt.push(i);
    return utf8.encode(value);
  });
  return { row: crossing, bytesAt };
}

const transferablesOf = (values: readonly unknown[]): ArrayBuffer[] =>
  values.flatMap((v) => (v instanceof Uint8Array ? [v.buffer as ArrayBuffer] : []));

/**
 * The rows as JSON texts of at most ROWS_PER_PIECE rows, halved while a text is longer than
 * PIECE_CHARS; a single row longer than that is a piece of its own, as a LargeRow.
 */
function encodePieces(rows: readonly WarehouseRow[]): Piece[] {
  const pieces: Piece[] = [];
  const encode = (from: number, to: number) => {
    const text = JSON.stringify(rows.slice(from, to));
    if (text.length <= PIECE_CHARS) pieces.push({ rows: text });
    else if (to - from === 1) pieces.push({ large: toLargeRow(rows[from]!) });
    else {
      const middle = from + Math.ceil((to - from) / 2);
      encode(from, middle);
      encode(middle, to);
    }
  };
  for (let from = 0; from < rows.length; from += ROWS_PER_PIECE)
    encode(from, Math.min(rows.length, from + ROWS_PER_PIECE));
  return pieces;
}

/** Rejects keep the source row whole: a long one crosses as bytes like a long value (their text columns are cast back). */
const crossingReject = (reject: RejectRow): CrossingValue[] => toLargeRow(reject).row;

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
 * own to the same file, while the main thread reads and maps the next batches. The worker
 * answers in order (ready, written per batch once its last piece is in, closed), so one queue of promises
 * follows it; the first failure rejects them all and every later call.
 */
export async function openSqliteWorkerWriter(filename: string, target: BulkTarget): Promise<BulkWriter> {
  const worker = new Worker(new URL('./sqlite-bulk-worker.mjs', import.meta.url), {
    // Plain JavaScript: no TypeScript loader (and no loader thread) inherited from the parent.
    execArgv: [],
    resourceLimits: {
      maxOldGenerationSizeMb: WORKER_OLD_GENERATION_MB,
      maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB,
    },
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
      const rowPieces = encodePieces(rows);
      const count = Math.max(1, rowPieces.length, Math.ceil(rejects.length / ROWS_PER_PIECE));
      for (let piece = 0; piece < count; piece++) {
        const rowPiece = rowPieces[piece] ?? { rows: '[]' };
        const pieceRejects = rejects
          .slice(piece * ROWS_PER_PIECE, (piece + 1) * ROWS_PER_PIECE)
          .map(crossingReject);
        worker.postMessage({ type: 'piece', ...rowPiece, rejects: pieceRejects, last: piece === count - 1 }, [
          ...('large' in rowPiece ? transferablesOf(rowPiece.large.row) : []),
          ...pieceRejects.flatMap(transferablesOf),
        ]);
      }
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
