import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConnectorScheduler } from '../connectors/scheduler.ts';
import { buildApp } from './app.ts';
import type { HubConfig } from './config.ts';
import { closeContext, openContext, type AppContext } from './context.ts';
import { loadDemoIfEmpty } from './services/demo-service.ts';
import { formatDemoAccess } from './services/demo-access.ts';
import { prepareWarehouse } from './services/connector-service.ts';
import { fetchWarehouseStatus } from './services/warehouse-status.ts';
import { startAuditCheckpoints } from './services/audit-log-service.ts';

export interface RunningHub {
  ctx: AppContext;
  server: Server;
  url: string;
  stop(): Promise<void>;
}

/** Entry: config → warehouse → migrate → (demo on an empty data folder) → scheduler + HTTP. */
export async function startHub(config: HubConfig, print: (line: string) => void = console.log): Promise<RunningHub> {
  const ctx = openContext(config);
  try {
    let prepared = await prepareWarehouse(ctx);
    if (prepared.migrations.length > 0) print(`Migrated ${ctx.warehouse.displayUrl}: ${prepared.migrations.join(', ')}`);
    const demoAccess = await loadDemoIfEmpty(ctx, prepared.connectors.length, print);
    if (demoAccess !== null) prepared = await prepareWarehouse(ctx);

    const scheduler = new ConnectorScheduler(ctx);
    if (config.scheduler) {
      const scheduled = scheduler.start(prepared.connectors);
      if (scheduled.length > 0) print(`Scheduled: ${scheduled.join(', ')}`);
    }
    const checkpoints = await startAuditCheckpoints(ctx);
    const server = buildApp(ctx).listen(config.port, config.host);
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const url = `http://${config.host}:${port}`;

    const status = await fetchWarehouseStatus(ctx);
    print(`Warehouse: ${status.persons.toLocaleString('en')} persons in ${status.tables.length} registry tables`);
    for (const t of status.tables) print(`  ${t.name.padEnd(24)} ${String(t.rowCount).padStart(10)} rows  (${t.entity}, ${t.connector})`);
    if (demoAccess !== null) for (const line of formatDemoAccess(demoAccess, url)) print(line);
    print(`Registry Hub listening on ${url}`);
    return {
      ctx,
      server,
      url,
      async stop() {
        await scheduler.stop();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await checkpoints.stop();
        await closeContext(ctx);
      },
    };
  } catch (err) {
    await closeContext(ctx);
    throw err;
  }
}
