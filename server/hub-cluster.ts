import cluster, { type Worker } from 'node:cluster';
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { HubError } from '../warehouse/core/errors.ts';
import { buildApp } from './app.ts';
import { stopChildProcess } from './stop-child-process.ts';
import type { HubConfig } from './config.ts';
import { closeContext, openContext, type AppContext } from './context.ts';
import {
  closeServer,
  explainWarehouseError,
  prepareHub,
  printWarehouseSummary,
  serveHttp,
  startBackgroundWork,
  type BackgroundWork,
} from './main.ts';

/** What a worker tells the primary: it serves (on this port), or it could not start (the one-line reason). */
type WorkerMessage = { type: 'listening'; port: number } | { type: 'failed'; message: string };

/** A worker that has not exited this long after it was asked to stop is killed. */
const STOP_GRACE_MS = 30_000;
/** More restarts than this within RESTART_WINDOW_MS, and the hub gives up instead of looping. */
const MAX_RESTARTS = 10;
const RESTART_WINDOW_MS = 60_000;

export interface RunningCluster {
  url: string;
  /** Stops the schedules, then every worker (each finishes its requests and flushes its audit), then writes the last checkpoint. */
  stop(): Promise<void>;
  /** Rejects if the workers keep dying and the hub gave up; never resolves otherwise. */
  failed: Promise<never>;
}

/**
 * `hub start --workers N`: this process (the primary) migrates the warehouse and loads the demo
 * once, forks N workers that serve HTTP on one shared port (node's cluster hands each incoming
 * connection to one of them), and runs the work that must happen once per hub — the connector
 * schedules and the signed audit checkpoints — itself, once every worker listens. Everything
 * workers share (rate limits, sign-in lockouts, sessions, grants, the audit chain) is kept in
 * the warehouse, so it does not matter which worker answers. A worker that dies is replaced.
 */
export async function startHubCluster(
  config: HubConfig,
  workers: number,
  print: (line: string) => void,
  options: { logger?: Logger } = {},
): Promise<RunningCluster> {
  const ctx = openContext(config, { ...options, loadProcesses: true });
  let background: BackgroundWork | null = null;
  const supervisor = new WorkerSupervisor(ctx.logger);
  try {
    const prepared = await prepareHub(ctx, print);
    const port = await supervisor.startAll(workers);
    const url = `http://${config.host}:${port}`;
    background = await startBackgroundWork(ctx, prepared.connectors, print);
    await printWarehouseSummary(ctx, prepared.demoAccess, url, print);
    ctx.logger.info({ workers: supervisor.describe() }, 'hub workers listening');
    print(`Registry Hub listening on ${url} (${workers} worker processes)`);
    const running = background;
    return {
      url,
      failed: supervisor.failed,
      async stop() {
        await running.scheduler.stop();
        await supervisor.stopAll();
        await running.checkpoints.stop();
        await closeContext(ctx);
      },
    };
  } catch (err) {
    await background?.scheduler.stop();
    await supervisor.stopAll();
    await background?.checkpoints.stop().catch(() => undefined);
    await closeContext(ctx).catch(() => undefined);
    throw explainWarehouseError(err, ctx);
  }
}

class WorkerSupervisor {
  readonly failed: Promise<never>;
  readonly #logger: Logger;
  readonly #workers = new Set<Worker>();
  readonly #restarts: number[] = [];
  #serving = false;
  #stopping = false;
  #giveUp: (err: Error) => void = () => undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
    this.failed = new Promise<never>((_resolve, reject) => {
      this.#giveUp = reject;
    });
    // Nobody may be waiting on it yet; the rejection is still seen by whoever awaits it later.
    this.failed.catch(() => undefined);
  }

  /** Forks every worker and waits until all listen; the first that cannot start fails the start with its reason. */
  async startAll(count: number): Promise<number> {
    const started = await Promise.all(Array.from({ length: count }, () => this.#fork()));
    this.#serving = true;
    return started[0]!.port;
  }

  describe(): Array<{ worker: number; worker_pid: number | undefined }> {
    return [...this.#workers].map((w) => ({ worker: w.id, worker_pid: w.process.pid }));
  }

  async stopAll(): Promise<void> {
    this.#stopping = true;
    await Promise.all([...this.#workers].map((w) => stopWorker(w)));
  }

  #fork(): Promise<{ worker: Worker; port: number }> {
    const worker = cluster.fork();
    this.#workers.add(worker);
    return new Promise((resolve, reject) => {
      let listening = false;
      worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'listening') {
          listening = true;
          resolve({ worker, port: message.port });
        } else if (message.type === 'failed') {
          reject(new HubError('cannot_start', 500, message.message));
        }
      });
      worker.once('exit', (code, signal) => {
        this.#workers.delete(worker);
        if (!listening) {
          reject(
            new HubError('cannot_start', 500, `a hub worker exited before it listened (${signal ?? code})`),
          );
          return;
        }
        if (this.#serving && !this.#stopping) this.#replace(worker, code, signal);
      });
    });
  }

  #replace(dead: Worker, code: number | null, signal: string | null): void {
    const now = Date.now();
    this.#restarts.push(now);
    while (this.#restarts[0]! < now - RESTART_WINDOW_MS) this.#restarts.shift();
    const exited = { worker: dead.id, worker_pid: dead.process.pid, code, signal };
    if (this.#restarts.length > MAX_RESTARTS) {
      this.#logger.error(exited, 'hub worker exited; too many restarts within a minute, stopping the hub');
      this.#giveUp(new HubError('workers_failing', 500, 'hub workers keep exiting; see the log'));
      return;
    }
    this.#logger.warn(exited, 'hub worker exited; starting another');
    this.#fork().then(
      ({ worker }) =>
        this.#logger.info({ worker: worker.id, worker_pid: worker.process.pid }, 'hub worker replaced'),
      (err: unknown) => this.#logger.error({ err }, 'hub worker could not be replaced'),
    );
  }
}

// SIGTERM rather than a message: a worker still starting has no handler yet and simply ends.
const stopWorker = (worker: Worker) => stopChildProcess(worker.process, STOP_GRACE_MS);

/**
 * A worker: serves HTTP on the port the primary shares, and nothing else (no migrations, no
 * schedules, no checkpoints). It stops on SIGTERM (how the primary asks) or when the primary
 * goes away; SIGINT (Ctrl-C reaches the whole process group) is left to the primary, which stops
 * every worker in order.
 */
export async function serveHubWorker(config: HubConfig): Promise<void> {
  const report = (message: WorkerMessage) => process.send?.(message);
  let ctx: AppContext | null = null;
  let server: Server;
  try {
    ctx = openContext(config, { loadProcesses: true });
    server = await serveHttp(ctx, withAnswerLog(buildApp(ctx), ctx.logger));
  } catch (err) {
    const explained = ctx === null ? err : explainWarehouseError(err, ctx);
    if (ctx !== null) await closeContext(ctx).catch(() => undefined);
    report({ type: 'failed', message: (explained as Error).message.split('\n')[0]! });
    process.exitCode = 1;
    process.disconnect?.();
    return;
  }
  const running = ctx;
  await new Promise<void>((resolve) => {
    let stopping: Promise<void> | null = null;
    const stop = () => {
      stopping ??= stopServing(server, running).then(resolve);
    };
    process.once('disconnect', stop);
    process.once('SIGTERM', stop);
    process.on('SIGINT', () => undefined);
    report({ type: 'listening', port: (server.address() as AddressInfo).port });
  });
  process.disconnect?.();
}

/** Finishes the requests under way, then flushes the audit. */
async function stopServing(server: Server, ctx: AppContext): Promise<void> {
  await closeServer(server);
  await closeContext(ctx);
}

/**
 * One debug line per answer, so an operator (or a test) can see which worker process answered:
 * pino writes the pid on every line. Only the path's first three segments are logged, never a
 * national ID or query name.
 */
function withAnswerLog(app: RequestListener, logger: Logger): RequestListener {
  if (!logger.isLevelEnabled('debug')) return app;
  return (req, res) => {
    res.once('finish', () =>
      logger.debug(
        {
          method: req.method,
          route: (req.url ?? '').split('?')[0]!.split('/').slice(0, 4).join('/'),
          status: res.statusCode,
        },
        'answered',
      ),
    );
    app(req, res);
  };
}
