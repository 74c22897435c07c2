import type { RunOptions } from '../../connectors/run-connector.ts';
import { conflict } from '../../warehouse/core/errors.ts';
import type { LoadPhase, LoadStats } from '../../warehouse/load/load-types.ts';
import type { AppContext } from '../context.ts';

export type RunPhase = 'starting' | LoadPhase | 'finished' | 'failed';

/** A run started by this process, as its load reports it. */
export interface LiveRun {
  connector: string;
  run_id: number | null;
  phase: RunPhase;
  stats: LoadStats;
  started_at: string;
  error: string | null;
}

const describe = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Runs connectors in the background for the portal and keeps each one's progress as its load
 * reports it (the callbacks the command line's progress bar uses), so a page can show it while
 * the request that started the run has long been answered. It holds the latest run of each
 * connector this process started; another process's runs are known from the run history alone.
 */
export class ConnectorRunTracker {
  readonly #ctx: AppContext;
  readonly #runs = new Map<string, LiveRun>();

  constructor(ctx: AppContext) {
    this.#ctx = ctx;
  }

  /**
   * Starts the connector and resolves with its run id as soon as the run holds the connector's
   * lock; the load goes on after. A run of the same connector still going, in this process or
   * another (the warehouse lock), is refused with 409 `connector_busy`, and so is anything else
   * that stops the run before it starts.
   */
  start(name: string, options: Pick<RunOptions, 'actor' | 'full' | 'trigger'>): Promise<{ run_id: number }> {
    const current = this.#runs.get(name);
    if (current !== undefined && current.phase !== 'finished' && current.phase !== 'failed')
      return Promise.reject(
        conflict('connector_busy', `${name} is already running (since ${current.started_at})`),
      );
    const live: LiveRun = {
      connector: name,
      run_id: null,
      phase: 'starting',
      stats: { read: 0, inserted: 0, updated: 0, deleted: 0, rejected: 0 },
      started_at: this.#ctx.clock.now().toISOString(),
      error: null,
    };
    this.#runs.set(name, live);
    return new Promise((resolve, reject) => {
      void this.#ctx.connectorRuns
        .run(name, {
          ...options,
          onStart: ({ run_id, started_at }) => {
            Object.assign(live, { run_id, started_at, phase: 'reading' });
            resolve({ run_id });
          },
          onProgress: (stats, phase) => Object.assign(live, { stats: { ...stats }, phase }),
        })
        .then((summary) => {
          resolve({ run_id: summary.run_id });
          const { read, inserted, updated, deleted, rejected } = summary;
          Object.assign(live, {
            stats: { read, inserted, updated, deleted, rejected },
            phase: summary.status === 'succeeded' ? 'finished' : 'failed',
            error: summary.error,
          });
        })
        .catch((err: unknown) => {
          Object.assign(live, { phase: 'failed', error: describe(err) });
          if (live.run_id === null) {
            this.#runs.delete(name);
            reject(err instanceof Error ? err : new Error(describe(err)));
          } else this.#ctx.logger.error({ err, connector: name }, 'connector run failed after it started');
        });
    });
  }

  /** The live state of a run this process started, if it is the latest of its connector. */
  fetchLiveRun(name: string, runId: number): LiveRun | undefined {
    const live = this.#runs.get(name);
    return live?.run_id === runId ? { ...live, stats: { ...live.stats } } : undefined;
  }
}
