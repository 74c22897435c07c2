import { once } from 'node:events';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ConnectorDefinition } from '../connectors/definition.ts';
import { ConnectorScheduler } from '../connectors/scheduler.ts';
import { HubError } from '../warehouse/core/errors.ts';
import { describeConnectionError } from '../warehouse/db.ts';
import { buildApp } from './app.ts';
import type { HubConfig } from './config.ts';
import { closeContext, openContext, type AppContext } from './context.ts';
import { loadDemoIfEmpty } from './services/demo-service.ts';
import { formatDemoAccess, type DemoAccess } from './services/demo-access.ts';
import { prepareWarehouse } from './services/connector-service.ts';
import { fetchWarehouseStatus } from './services/warehouse-status.ts';
import { startAuditCheckpoints, type AuditCheckpointer } from './services/audit-log-service.ts';
import { startServingCheckpoints } from '../warehouse/dialects/sqlite-serving-checkpoints.ts';
import { startHubWhoReadIndexing } from './services/who-read-index-thread.ts';

export interface RunningHub {
  ctx: AppContext;
  server: Server;
  url: string;
  stop(): Promise<void>;
}

/**
 * Entry: config → warehouse → migrate → (demo, see loadDemoIfEmpty) → HTTP → scheduler. Each
 * step that fails ends the start with one HubError (the command line prints it as one `hub:`
 * line and exits 1). The scheduler starts only once the server listens, so a hub that cannot
 * serve never loads in the background.
 */
export async function startHub(
  config: HubConfig,
  print: (line: string) => void = console.log,
  options: { logger?: Logger } = {},
): Promise<RunningHub> {
  const ctx = openContext(config, { ...options, loadProcesses: true });
  let background: BackgroundWork | null = null;
  try {
    const prepared = await prepareHub(ctx, print);
    const server = await serveHttp(ctx, buildApp(ctx));
    const { port } = server.address() as AddressInfo;
    const url = `http://${config.host}:${port}`;
    background = await startBackgroundWork(ctx, prepared.connectors, print);
    await printWarehouseSummary(ctx, prepared.demoAccess, url, print);
    print(`Registry Hub listening on ${url}`);
    const running = background;
    return {
      ctx,
      server,
      url,
      async stop() {
        await running.scheduler.stop();
        await closeServer(server);
        await running.checkpoints.stop();
        await closeContext(ctx);
      },
    };
  } catch (err) {
    await background?.scheduler.stop();
    await background?.checkpoints.stop().catch(() => undefined);
    await closeContext(ctx).catch(() => undefined);
    throw explainWarehouseError(err, ctx);
  }
}

export interface PreparedHub {
  connectors: ConnectorDefinition[];
  demoAccess: DemoAccess | null;
}

/** Migrations, connector definitions and the demo: what runs once per start, before any request is served. */
export async function prepareHub(ctx: AppContext, print: (line: string) => void): Promise<PreparedHub> {
  let prepared = await prepareWarehouse(ctx).catch((err: unknown) => {
    throw explainWarehouseError(err, ctx);
  });
  if (prepared.migrations.length > 0)
    print(`Migrated ${ctx.warehouse.displayUrl}: ${prepared.migrations.join(', ')}`);
  for (const bad of prepared.invalid) {
    print(`Skipped invalid connector definition ${bad.message}`);
    ctx.logger.warn({ file: bad.file, fields: bad.fields }, 'connector definition skipped');
  }
  const demoAccess = await loadDemoIfEmpty(ctx, prepared.connectors.length + prepared.invalid.length, print);
  if (demoAccess !== null) prepared = await prepareWarehouse(ctx);
  return { connectors: prepared.connectors, demoAccess };
}

/** Listens, then reads the keys: a missing or unreadable key file stops the start instead of failing every token request later. */
export async function serveHttp(ctx: AppContext, app: RequestListener): Promise<Server> {
  const server = await listen(app, ctx.config);
  try {
    ctx.keyring.currentKid();
  } catch (err) {
    server.close();
    throw err;
  }
  return server;
}

/** The audit checkpoints, the WAL's, the who-read index and the connector schedules: one process of a hub runs them. */
export interface BackgroundWork {
  scheduler: ConnectorScheduler;
  /** Stops the who-read index and both kinds of checkpoint: the audit's last one is written, then the WAL thread ends. */
  checkpoints: AuditCheckpointer;
}

/** Started once the port is ours: a hub that cannot serve writes no checkpoint and loads nothing. */
export async function startBackgroundWork(
  ctx: AppContext,
  connectors: ConnectorDefinition[],
  print: (line: string) => void,
): Promise<BackgroundWork> {
  const audit = await startAuditCheckpoints(ctx);
  // Without the thread SQLite's autocheckpoint still copies the WAL, on the committing connection.
  const wal = await startServingCheckpoints(ctx.warehouse).catch((err: unknown) => {
    ctx.logger.warn({ err }, 'WAL checkpoint thread not started: commits checkpoint the WAL themselves');
    return null;
  });
  const whoRead = startHubWhoReadIndexing(ctx);
  const checkpoints = {
    async stop() {
      try {
        await whoRead.stop();
        await audit.stop();
      } finally {
        await wal?.stop();
      }
    },
  };
  const scheduler = new ConnectorScheduler(ctx);
  try {
    if (ctx.config.scheduler) {
      const scheduled = scheduler.start(connectors);
      if (scheduled.length > 0) print(`Scheduled: ${scheduled.join(', ')}`);
    }
  } catch (err) {
    // The caller never gets these to stop: a thread left running would keep the process alive.
    await scheduler.stop();
    await checkpoints.stop().catch(() => undefined);
    throw err;
  }
  return { scheduler, checkpoints };
}

export async function printWarehouseSummary(
  ctx: AppContext,
  demoAccess: DemoAccess | null,
  url: string,
  print: (line: string) => void,
): Promise<void> {
  const status = await fetchWarehouseStatus(ctx);
  const tables = `${status.tables.length} registry tables`;
  print(
    status.persons === null
      ? `Warehouse: ${tables}, the person key being filled by a load`
      : `Warehouse: ${status.persons.toLocaleString('en')} persons in ${tables}`,
  );
  for (const t of status.tables)
    print(`  ${t.name.padEnd(24)} ${String(t.rowCount).padStart(10)} rows  (${t.entity}, ${t.connector})`);
  if (demoAccess !== null) for (const line of formatDemoAccess(demoAccess, url)) print(line);
}

/** A request still running when its connection was cut would find the audit closed, so it may finish (idle connections close at once). */
const CLOSE_GRACE_MS = 10_000;

/** Stops accepting connections and resolves once the requests under way have been answered (or the grace period ran out). */
export async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // A keep-alive connection turns idle once its answer is sent; it is closed then, not at its timeout.
  const idle = setInterval(() => server.closeIdleConnections(), 50);
  const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
  server.closeIdleConnections();
  await closed;
  clearInterval(idle);
  clearTimeout(timer);
}

/** Resolves once the server listens; a port that cannot be bound is one clear error, not an 'error' event nobody hears. */
async function listen(app: RequestListener, config: HubConfig): Promise<Server> {
  const server = createServer(app).listen(config.port, config.host);
  try {
    await once(server, 'listening');
    return server;
  } catch (err) {
    server.close();
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why: Record<string, string> = {
      EADDRINUSE: 'the port is already in use',
      EACCES: 'permission denied',
      EADDRNOTAVAIL: 'the address is not available on this machine',
    };
    throw new HubError(
      'cannot_listen',
      500,
      `cannot listen on ${config.host}:${config.port}: ${why[code] ?? (err as Error).message} (${code})`,
    );
  }
}

export function explainWarehouseError(err: unknown, ctx: AppContext): unknown {
  if (err instanceof HubError) return err;
  const reason = describeConnectionError(err);
  if (reason === null) return err;
  return new HubError(
    'warehouse_unavailable',
    503,
    `cannot open the warehouse ${ctx.warehouse.displayUrl}: ${reason}`,
  );
}
