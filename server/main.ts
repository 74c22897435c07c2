import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ConnectorScheduler } from '../connectors/scheduler.ts';
import { HubError } from '../warehouse/core/errors.ts';
import { describeConnectionError } from '../warehouse/db.ts';
import { buildApp } from './app.ts';
import type { HubConfig } from './config.ts';
import { closeContext, openContext, type AppContext } from './context.ts';
import { loadDemoIfEmpty } from './services/demo-service.ts';
import { formatDemoAccess } from './services/demo-access.ts';
import { prepareWarehouse } from './services/connector-service.ts';
import { fetchWarehouseStatus } from './services/warehouse-status.ts';
import { startAuditCheckpoints, type AuditCheckpointer } from './services/audit-log-service.ts';

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
  const ctx = openContext(config, options);
  let scheduler: ConnectorScheduler | null = null;
  let checkpoints: AuditCheckpointer | null = null;
  try {
    let prepared = await prepareWarehouse(ctx).catch((err: unknown) => {
      throw explainWarehouseError(err, ctx);
    });
    if (prepared.migrations.length > 0)
      print(`Migrated ${ctx.warehouse.displayUrl}: ${prepared.migrations.join(', ')}`);
    for (const bad of prepared.invalid) {
      print(`Skipped invalid connector definition ${bad.message}`);
      ctx.logger.warn({ file: bad.file, fields: bad.fields }, 'connector definition skipped');
    }
    const demoAccess = await loadDemoIfEmpty(
      ctx,
      prepared.connectors.length + prepared.invalid.length,
      print,
    );
    if (demoAccess !== null) prepared = await prepareWarehouse(ctx);

    const server = await listen(buildApp(ctx), config);
    // Read the keys now: a missing or unreadable key file stops the start instead of failing every token request later.
    try {
      ctx.keyring.currentKid();
    } catch (err) {
      server.close();
      throw err;
    }
    // Once the port is ours: a hub that cannot serve writes no key file and no checkpoint.
    checkpoints = await startAuditCheckpoints(ctx);
    const { port } = server.address() as AddressInfo;
    const url = `http://${config.host}:${port}`;

    scheduler = new ConnectorScheduler(ctx);
    if (config.scheduler) {
      const scheduled = scheduler.start(prepared.connectors);
      if (scheduled.length > 0) print(`Scheduled: ${scheduled.join(', ')}`);
    }

    const status = await fetchWarehouseStatus(ctx);
    print(
      `Warehouse: ${status.persons.toLocaleString('en')} persons in ${status.tables.length} registry tables`,
    );
    for (const t of status.tables)
      print(`  ${t.name.padEnd(24)} ${String(t.rowCount).padStart(10)} rows  (${t.entity}, ${t.connector})`);
    if (demoAccess !== null) for (const line of formatDemoAccess(demoAccess, url)) print(line);
    print(`Registry Hub listening on ${url}`);
    const running = { scheduler, checkpoints };
    return {
      ctx,
      server,
      url,
      async stop() {
        await running.scheduler.stop();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await running.checkpoints.stop();
        await closeContext(ctx);
      },
    };
  } catch (err) {
    await scheduler?.stop();
    await checkpoints?.stop().catch(() => undefined);
    await closeContext(ctx).catch(() => undefined);
    throw explainWarehouseError(err, ctx);
  }
}

/** Resolves once the server listens; a port that cannot be bound is one clear error, not an 'error' event nobody hears. */
async function listen(app: ReturnType<typeof buildApp>, config: HubConfig): Promise<Server> {
  const server = app.listen(config.port, config.host);
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

function explainWarehouseError(err: unknown, ctx: AppContext): unknown {
  if (err instanceof HubError) return err;
  const reason = describeConnectionError(err);
  if (reason === null) return err;
  return new HubError(
    'warehouse_unavailable',
    503,
    `cannot open the warehouse ${ctx.warehouse.displayUrl}: ${reason}`,
  );
}
