import { indexWhoRead, type WhoReadIndexOptions } from '../../warehouse/audit/who-read-index.ts';
import type { AppContext } from '../context.ts';

/** Often enough that the tail a who-read lookup scans stays within a run or two of rows. */
export const WHO_READ_INDEX_INTERVAL_MS = 1000;
/** A quiet hub's last events go into a run after this long, however few they are. */
const FLUSH_TAIL_MS = 60_000;

export interface WhoReadIndexing {
  /** Stops between two transactions of the pass in progress, and waits for it. */
  stop(): Promise<void>;
}

/**
 * Keeps the who-read index up to date (see who-read-index.ts), one pass at a time: the hub's
 * primary process runs it, beside the audit checkpoints. A failed pass is logged and the next
 * one starts where the index stands.
 */
export function startWhoReadIndexing(
  ctx: AppContext,
  options: { intervalMs?: number; index?: Omit<WhoReadIndexOptions, 'flushTail' | 'signal'> } = {},
): WhoReadIndexing {
  const stopping = new AbortController();
  let running: Promise<void> | null = null;
  let flushedAt = Date.now();
  const pass = async () => {
    const flushTail = Date.now() - flushedAt >= FLUSH_TAIL_MS;
    try {
      const report = await indexWhoRead(ctx.knex, { ...options.index, flushTail, signal: stopping.signal });
      if (flushTail) flushedAt = Date.now();
      if (report.merged > 0) ctx.logger.debug(report, 'who-read index runs merged');
    } catch (err) {
      if (!stopping.signal.aborted)
        ctx.logger.warn({ err }, 'who-read index pass failed; the next pass goes on');
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
