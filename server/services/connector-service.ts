import { readConnectorDefinitions, type ConnectorDefinition } from '../../connectors/definition.ts';
import { runConnector, type RunOptions, type RunSummary } from '../../connectors/run-connector.ts';
import { syncConnectors } from '../../connectors/sync-connectors.ts';
import { notFound } from '../../warehouse/core/errors.ts';
import { migrateWarehouse } from '../../warehouse/migrations/migrate.ts';
import type { AppContext } from '../context.ts';

export interface PreparedWarehouse {
  migrations: string[];
  connectors: ConnectorDefinition[];
}

/** Migrates the hub tables, reads the connector definitions and creates their registry tables and catalog. */
export async function prepareWarehouse(ctx: AppContext): Promise<PreparedWarehouse> {
  const migrations = await migrateWarehouse(ctx.knex);
  const connectors = await readConnectorDefinitions(ctx.config.connectorsDir);
  await syncConnectors(ctx.knex, connectors);
  ctx.catalog.invalidate();
  return { migrations, connectors };
}

/** The definition named, among those prepareWarehouse read and registered. */
export function findConnectorDefinition(defs: ConnectorDefinition[], name: string): ConnectorDefinition {
  const def = defs.find((d) => d.name === name);
  if (def === undefined) {
    const known = defs.map((d) => d.name).join(', ') || 'none';
    throw notFound(`no connector named ${JSON.stringify(name)} (known: ${known})`);
  }
  return def;
}

/** Prepares the warehouse (migrations, definitions, registry tables) and runs one connector. */
export async function runConnectorByName(ctx: AppContext, name: string, options: RunOptions = {}): Promise<RunSummary> {
  const { connectors } = await prepareWarehouse(ctx);
  return runConnector(findConnectorDefinition(connectors, name), ctx, options);
}

export interface ConnectorOverview {
  name: string;
  entity: string;
  table: string;
  mode: string;
  schedule: string | null;
  source: string;
  watermark: string | null;
  last_status: string | null;
  last_finished_at: string | null;
}

export async function fetchConnectorOverview(ctx: AppContext): Promise<ConnectorOverview[]> {
  const { connectors: defs } = await prepareWarehouse(ctx);
  const states = await ctx.knex('hub_connectors as c')
    .leftJoin('hub_connector_runs as r', 'r.id', 'c.last_run_id')
    .select<Array<{ name: string; watermark: string | null; status: string | null; finished_at: string | null }>>(
      'c.name',
      'c.watermark',
      'r.status',
      'r.finished_at',
    );
  const byName = new Map(states.map((s) => [s.name, s]));
  return defs.map((d) => ({
    name: d.name,
    entity: d.entity,
    table: d.target.table,
    mode: d.mode,
    schedule: d.schedule ?? null,
    source: d.source.kind,
    watermark: byName.get(d.name)?.watermark ?? null,
    last_status: byName.get(d.name)?.status ?? null,
    last_finished_at: byName.get(d.name)?.finished_at ?? null,
  }));
}

export interface RunHistoryRow {
  id: number;
  mode: string;
  trigger: string;
  status: string;
  started_at: string;
  finished_at: string | null;
  rows_read: number;
  rows_inserted: number;
  rows_updated: number;
  rows_deleted: number;
  rows_rejected: number;
  error: string | null;
}

export async function fetchRunHistory(ctx: AppContext, name: string, limit = 20): Promise<RunHistoryRow[]> {
  findConnectorDefinition((await prepareWarehouse(ctx)).connectors, name);
  return ctx.knex<RunHistoryRow>('hub_connector_runs')
    .where('connector', name)
    .orderBy('id', 'desc')
    .limit(limit)
    .select('id', 'mode', 'trigger', 'status', 'started_at', 'finished_at', 'rows_read', 'rows_inserted', 'rows_updated', 'rows_deleted', 'rows_rejected', 'error');
}
