import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { markRunsInterrupted, type RunOptions, type RunSummary } from '../../connectors/run-connector.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import type { LoadPhase, LoadStats } from '../../warehouse/load/load-types.ts';
import { missingBulkFlags } from '../cli/bulk-process.mjs';
import { stopChildProcess } from '../stop-child-process.ts';
import type { HubConfig } from '../config.ts';
import type { AppContext } from '../context.ts';
import type { ConnectorRunner } from './connector-runner.ts';

const ENTRY = fileURLToPath(new URL('./load-process-entry.mjs', import.meta.url));

/** A run's process still alive this long after SIGTERM is killed. */
const STOP_GRACE_MS = 10_000;

/** What the hub sends a load process: the one run it is for. */
export interface ToLoadProcess {
  type: 'run';
  config: HubConfig;
  name: string;
  options: Pick<RunOptions, 'full' | 'trigger' | 'actor'>;
}

/** An error as it crosses between processes: a HubError keeps its code and HTTP status. */
export interface RunError {
  message: string;
  code?: string;
  status?: number;
}

/** What a load process reports, in this order: started (once the run holds its lock), progress, then finished or failed. */
export type FromLoadProcess =
  | { type: 'started'; run: { run_id: number; mode: 'full' | 'incremental'; started_at: string } }
  | { type: 'progress'; stats: LoadStats; phase: LoadPhase }
  | { type: 'finished'; summary: RunSummary }
  | { type: 'failed'; error: RunError };

export function describeRunError(err: unknown): RunError {
  if (err instanceof HubError) return { message: err.message, code: err.code, status: err.status };
  return { message: err instanceof Error ? err.message : String(err) };
}

const rebuildError = (e: RunError) =>
  e.code !== undefined && e.status !== undefined
    ? new HubError(e.code, e.status, e.message)
    : new Error(e.message);

/**
 * Runs each connector run of a serving hub in a node process of its own, started for the run and
 * ended with it. The serving process keeps its event loop for requests while a load maps rows and
 * builds indexes, and its memory for them: a load's batches, which a process that serves keeps in
 * a young generation sized for requests, live and die in a process with the bulk commands' smaller
 * one (bulk-process.mjs). A run's process that ends before it reports how the run ended (killed,
 * out of memory) has its run marked failed at once; the connector's lock names that process, so
 * the next run takes it without waiting for its lease.
 */
export class LoadProcesses implements ConnectorRunner {
  readonly #ctx: AppContext;
  /** Each run's process under way, with a promise that settles once its run's outcome is handled. */
  readonly #runs = new Map<ChildProcess, Promise<void>>();
  #closed = false;

  constructor(ctx: AppContext) {
    this.#ctx = ctx;
  }

  run(name: string, options: RunOptions): Promise<RunSummary> {
    if (this.#closed) return Promise.reject(new HubError('hub_stopping', 503, 'the hub is stopping'));
    const child = fork(ENTRY, [], {
      // Not this process's own node flags (an inspector port, a profile): NODE_OPTIONS, which
      // every hub process reads, is where an operator's flags for loads go.
      execArgv: missingBulkFlags([]),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const done = this.#follow(child, name, options);
    this.#runs.set(
      child,
      done.then(
        () => void this.#runs.delete(child),
        () => void this.#runs.delete(child),
      ),
    );
    const { full, trigger, actor } = options;
    const message: ToLoadProcess = {
      type: 'run',
      config: this.#ctx.config,
      name,
      options: { full, trigger, actor },
    };
    child.send(message, (err) => {
      if (err) child.kill('SIGKILL');
    });
    return done;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const runs = [...this.#runs];
    await Promise.all(runs.map(([child]) => stopChildProcess(child, STOP_GRACE_MS)));
    await Promise.all(runs.map(([, settled]) => settled));
  }

  #follow(child: ChildProcess, name: string, options: RunOptions): Promise<RunSummary> {
    return new Promise((resolve, reject) => {
      let runId: number | null = null;
      let outcome: { summary: RunSummary } | { error: RunError } | null = null;
      child.on('message', (message: FromLoadProcess) => {
        if (message.type === 'started') {
          runId = message.run.run_id;
          // The run's process registered the definitions as the folder holds them: the catalog
          // this process keeps for a few seconds may be older.
          this.#ctx.catalog.invalidate();
          options.onStart?.(message.run);
        } else if (message.type === 'progress') options.onProgress?.(message.stats, message.phase);
        else if (message.type === 'finished') outcome = { summary: message.summary };
        else outcome = { error: message.error };
      });
      // 'close' comes after the exit and after the last message: the run's outcome is known by then.
      const ended = (how: string) => {
        if (outcome !== null) {
          if ('summary' in outcome) resolve(outcome.summary);
          else reject(rebuildError(outcome.error));
          return;
        }
        if (runId === null) {
          reject(
            new HubError(
              'load_process_failed',
              500,
              `the run's process ended (${how}) before the run started`,
            ),
          );
          return;
        }
        const reason = `interrupted: the run's process ended (${how}) during the run`;
        markRunsInterrupted(this.#ctx, [runId], reason)
          .catch((err: unknown) => logFailure(this.#ctx.logger, err, name))
          .finally(() => reject(new HubError('load_interrupted', 500, `${name}: ${reason}`)));
      };
      child.once('close', (code, signal) => ended(signal ?? `exit code ${String(code)}`));
      child.once('error', (err) => {
        if (child.pid === undefined)
          reject(
            new HubError('load_process_failed', 500, `the run's process could not start: ${err.message}`),
          );
      });
    });
  }
}

function logFailure(logger: Logger, err: unknown, connector: string) {
  logger.error({ err, connector }, 'an interrupted run could not be marked failed');
}
