import { Worker } from 'node:worker_threads';
import type { WhoReadIndexOptions, WhoReadIndexReport } from '../../warehouse/audit/who-read-index.ts';
import { sqliteFilename } from '../../warehouse/dialects/sqlite.ts';
import type { AppContext } from '../context.ts';
import { startWhoReadIndexing, type WhoReadIndexing, type WhoReadIndexingLog } from './who-read-indexing.ts';

/** What the thread is started with: only values a message can carry. */
export interface WhoReadThreadData {
  databaseUrl: string;
  intervalMs?: number;
  index?: Pick<WhoReadIndexOptions, 'runRows' | 'fanIn' | 'chunkRows' | 'pauseMs'>;
}

export type WhoReadThreadMessage =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'merged'; report: WhoReadIndexReport }
  | { type: 'pass-failed'; message: string }
  | { type: 'driver'; message: string }
  | { type: 'stopped' };

/** knex, the indexer and tsx's loader; without a limit V8 would size the thread's heap like a process's. */
const THREAD_OLD_GENERATION_MB = 96;

/** The thread's entry point: registers the TypeScript loader, then runs who-read-index-thread-main.ts. */
const THREAD_ENTRY = new URL('./who-read-index-worker.mjs', import.meta.url);

export interface WhoReadThreadLog extends WhoReadIndexingLog {
  driver(message: string): void;
  /** The thread ended without being asked to (it failed, or ran out of memory). */
  exited(err: unknown): void;
}

/**
 * Keeps the who-read index from a thread of its own, on its own connection to the warehouse.
 * better-sqlite3 is synchronous: on the serving thread each step of a pass (sorting 20,000 subject
 * rows into a run, copying a range of a merge, deleting one of a merged run) stopped the event
 * loop, and every request in flight waited for it; a single-process hub answering pages of 200
 * persons stopped for up to half a second at a time. Rejects if the thread cannot start or
 * cannot open the warehouse.
 */
export async function startWhoReadIndexingThread(
  data: WhoReadThreadData,
  log: WhoReadThreadLog,
  entry: URL = THREAD_ENTRY,
): Promise<WhoReadIndexing> {
  const worker = new Worker(entry, {
    // The thread registers the TypeScript loader itself; inherited flags would load it twice.
    execArgv: [],
    resourceLimits: { maxOldGenerationSizeMb: THREAD_OLD_GENERATION_MB },
    workerData: data,
  });
  let lastError: unknown = null;
  let stopping: Promise<void> | null = null;
  let answered: () => void = () => undefined;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const first = await new Promise<WhoReadThreadMessage>((resolve, reject) => {
    worker.on('message', (message: WhoReadThreadMessage) => {
      if (message.type === 'ready' || message.type === 'failed') resolve(message);
      else if (message.type === 'merged') log.merged(message.report);
      else if (message.type === 'pass-failed') log.failed(new Error(message.message));
      else if (message.type === 'driver') log.driver(message.message);
      else answered();
    });
    worker.on('error', (err) => {
      lastError = err;
      reject(err);
    });
    void exited.then(() => reject(new Error('the who-read index thread exited before it started')));
  });
  if (first.type === 'failed') {
    await worker.terminate();
    throw new Error(`the who-read index thread could not start: ${first.message}`);
  }
  void exited.then(() => {
    if (stopping === null) log.exited(lastError ?? new Error('the who-read index thread exited'));
  });
  return {
    stop() {
      stopping ??= (async () => {
        const stopped = new Promise<void>((resolve) => (answered = resolve));
        worker.postMessage({ type: 'stop' });
        await Promise.race([stopped, exited]);
        await worker.terminate();
      })();
      return stopping;
    },
  };
}

/**
 * The who-read indexing of a serving hub: on a thread of its own for a SQLite file, whose
 * statements stop the thread that runs them; on the serving thread elsewhere (PostgreSQL and
 * SQL Server work in their own processes while the event loop goes on) and for a database in
 * memory (no other connection can open it). The thread starts beside the hub rather than before
 * it serves (loading it takes about half a second); should it fail to start, or end without
 * being stopped, the serving thread keeps the index from then on, so it never stops catching up.
 * `thread` replaces what the thread is started with, `entry` the thread's code (tests).
 */
export function startHubWhoReadIndexing(
  ctx: AppContext,
  options: { thread?: Partial<WhoReadThreadData>; entry?: URL } = {},
): WhoReadIndexing {
  const data = { databaseUrl: ctx.config.databaseUrl, ...options.thread };
  let current: WhoReadIndexing | null = null;
  let stopped = false;
  const log: WhoReadThreadLog = {
    merged: (report) => ctx.logger.debug(report, 'who-read index runs merged'),
    failed: (err) => ctx.logger.warn({ err }, 'who-read index pass failed; the next pass goes on'),
    driver: (message) => ctx.logger.debug({ driver: message }, 'who-read index driver message'),
    exited: (err) => fallBack(err, 'who-read index thread ended: the serving thread keeps the index'),
  };
  const onThisThread = () =>
    startWhoReadIndexing(ctx.knex, log, { intervalMs: data.intervalMs, index: data.index });
  function fallBack(err: unknown, message: string): void {
    if (stopped) return;
    ctx.logger.warn({ err }, message);
    current = onThisThread();
  }
  const { warehouse } = ctx;
  const ownThread =
    warehouse.dialect === 'sqlite' &&
    warehouse.reader !== warehouse.knex &&
    sqliteFilename(ctx.knex) !== null;
  if (!ownThread) return onThisThread();
  const starting = startWhoReadIndexingThread(data, log, options.entry).then(
    (thread) => {
      // Stopped while it started: it goes at once.
      if (stopped) return thread.stop();
      current = thread;
      return undefined;
    },
    (err: unknown) => fallBack(err, 'who-read index thread not started: the serving thread keeps the index'),
  );
  return {
    async stop() {
      stopped = true;
      await starting;
      await current?.stop();
    },
  };
}
