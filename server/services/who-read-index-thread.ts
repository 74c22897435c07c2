import { Worker } from 'node:worker_threads';
import type { WhoReadIndexOptions, WhoReadIndexReport } from '../../warehouse/audit/who-read-index.ts';
import { sqliteFilename } from '../../warehouse/dialects/sqlite.ts';
import type { AppContext } from '../context.ts';
import { startWhoReadIndexing, type WhoReadIndexing, type WhoReadIndexingLog } from './who-read-indexing.ts';

/** What the thread is started with: only values a message can carry. */
export interface WhoReadThreadData {
  databaseUrl: string;
  intervalMs?: number;
  index?: Pick<WhoReadIndexOptions, 'runRows' | 'fanIn' | 'chunkRows'>;
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
  log: WhoReadIndexingLog & { driver(message: string): void },
): Promise<WhoReadIndexing> {
  const worker = new Worker(new URL('./who-read-index-worker.mjs', import.meta.url), {
    // The thread registers the TypeScript loader itself; inherited flags would load it twice.
    execArgv: [],
    resourceLimits: { maxOldGenerationSizeMb: THREAD_OLD_GENERATION_MB },
    workerData: data,
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  let stopped: () => void = () => undefined;
  const first = await new Promise<WhoReadThreadMessage>((resolve, reject) => {
    worker.on('message', (message: WhoReadThreadMessage) => {
      if (message.type === 'ready' || message.type === 'failed') resolve(message);
      else if (message.type === 'merged') log.merged(message.report);
      else if (message.type === 'pass-failed') log.failed(new Error(message.message));
      else if (message.type === 'driver') log.driver(message.message);
      else stopped();
    });
    worker.once('error', reject);
    void exited.then(() => reject(new Error('the who-read index thread exited before it started')));
  });
  if (first.type === 'failed') {
    await worker.terminate();
    throw new Error(`the who-read index thread could not start: ${first.message}`);
  }
  // Once started, an error that ends the thread is logged; the index waits for the next start.
  worker.on('error', (err) => log.failed(err));
  let stopping: Promise<void> | null = null;
  return {
    stop() {
      stopping ??= (async () => {
        const answered = new Promise<void>((resolve) => (stopped = resolve));
        worker.postMessage({ type: 'stop' });
        await Promise.race([answered, exited]);
        await worker.terminate();
      })();
      return stopping;
    },
  };
}

/**
 * The who-read indexing of a serving hub: on a thread of its own for a SQLite file, whose
 * statements stop the thread that runs them; on the serving thread elsewhere (PostgreSQL and
 * SQL Server work in their own processes while the event loop goes on), for a database in
 * memory (no other connection can open it), and should the thread not start.
 */
export async function startHubWhoReadIndexing(ctx: AppContext): Promise<WhoReadIndexing> {
  const log = {
    merged: (report: WhoReadIndexReport) => ctx.logger.debug(report, 'who-read index runs merged'),
    failed: (err: unknown) => ctx.logger.warn({ err }, 'who-read index pass failed; the next pass goes on'),
    driver: (message: string) => ctx.logger.debug({ driver: message }, 'who-read index driver message'),
  };
  const { warehouse } = ctx;
  const ownThread =
    warehouse.dialect === 'sqlite' &&
    warehouse.reader !== warehouse.knex &&
    sqliteFilename(ctx.knex) !== null;
  if (ownThread) {
    try {
      return await startWhoReadIndexingThread({ databaseUrl: ctx.config.databaseUrl }, log);
    } catch (err) {
      ctx.logger.warn({ err }, 'who-read index thread not started: the serving thread keeps the index');
    }
  }
  return startWhoReadIndexing(ctx.knex, log);
}
