import type { Knex } from 'knex';
import {
  indexWhoRead,
  type WhoReadIndexOptions,
  type WhoReadIndexReport,
} from '../../warehouse/audit/who-read-index.ts';
import { dialectOf } from '../../warehouse/dialects/index.ts';
import { SQLITE_PAUSE_BETWEEN_STEPS_MS } from '../../warehouse/dialects/sqlite-turn-writer.ts';

/** Often enough that the tail a who-read lookup scans stays within a run or two of rows. */
export const WHO_READ_INDEX_INTERVAL_MS = 1000;
/** A quiet hub's last events go into a run after this long, however few they are. */
const FLUSH_TAIL_MS = 60_000;

export interface WhoReadIndexing {
  /** Stops between two transactions of the pass in progress, and waits for it. */
  stop(): Promise<void>;
}

/** What a pass has to tell: runs merged (worth a debug line), or a pass that failed. */
export interface WhoReadIndexingLog {
  merged(report: WhoReadIndexReport): void;
  failed(err: unknown): void;
}

export interface WhoReadIndexingOptions {
  intervalMs?: number;
  index?: Omit<WhoReadIndexOptions, 'flushTail' | 'signal'>;
}

/**
 * Keeps the who-read index up to date (see who-read-index.ts), one pass at a time, on the
 * calling thread. A failed pass is logged and the next one starts where the index stands.
 */
export function startWhoReadIndexing(
  knex: Knex,
  log: WhoReadIndexingLog,
  options: WhoReadIndexingOptions = {},
): WhoReadIndexing {
  const stopping = new AbortController();
  let running: Promise<void> | null = null;
  let flushedAt = Date.now();
  // Elsewhere writers wait for row locks, not the file's: the answers need no gap.
  const pauseMs = dialectOf(knex).name === 'sqlite' ? SQLITE_PAUSE_BETWEEN_STEPS_MS : 0;
  const pass = async () => {
    const flushTail = Date.now() - flushedAt >= FLUSH_TAIL_MS;
    try {
      const report = await indexWhoRead(knex, {
        pauseMs,
        ...options.index,
        flushTail,
        signal: stopping.signal,
      });
      if (flushTail) flushedAt = Date.now();
      if (report.merged > 0) log.merged(report);
    } catch (err) {
      if (!stopping.signal.aborted) log.failed(err);
    }
  };
  const timer = setInterval(() => {
    if (running === null) running = pass().finally(() => (running = null));
  }, options.intervalMs ?? WHO_READ_INDEX_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await running;
    },
  };
}
