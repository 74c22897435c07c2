import {
  readConnectorFolder,
  type ConnectorDefinition,
  type InvalidDefinition,
} from '../../connectors/definition.ts';
import { runConnector, type RunOptions, type RunSummary } from '../../connectors/run-connector.ts';
import { syncConnectors } from '../../connectors/sync-connectors.ts';
import { notFound } from '../../warehouse/core/errors.ts';
import { migrateWarehouse } from '../../warehouse/migrations/migrate.ts';
import type { AppContext } from '../context.ts';

export interface PreparedWarehouse {
  migrations: string[];
  connectors: ConnectorDefinition[];
  /** Definition files that were skipped, each with the reason. */
  invalid: InvalidDefinition[];
}

/**
 * Migrates the hub tables, reads the connector definitions and creates their registry tables
 * and catalog. An invalid definition file is skipped and returned, not thrown: it must not
 * stop the hub or the other connectors.
 */
export async function prepareWarehouse(ctx: AppContext): Promise<PreparedWarehouse> {
  const migrations = await migrateWarehouse(ctx.knex);
  const { definitions, invalid } = await readConnectorFolder(ctx.config.connectorsDir);
  await syncConnectors(ctx.knex, definitions);
  ctx.catalog.invalidate();
  return { migrations, connectors: definitions, invalid };
}

/** The definition named, among those prepareWarehouse read and registered. */
export function findConnectorDefinition(
  defs: ConnectorDefinition[],
  name: string,
  invalid: InvalidDefinition[] = [],
): ConnectorDefinition {
  const def = defs.find((d) => d.name === name);
  if (def === undefined) {
    const known = defs.map((d) => d.name).join(', ') || 'none';
    const skipped =
      invalid.length > 0 ? `; invalid definition files: ${invalid.map((i) => i.file).join(', ')}` : '';
    throw notFound(`no connector named ${JSON.stringify(name)} (known: ${known}${skipped})`);
  }
  return def;
}

/** Prepares the warehouse (migrations, definitions, registry tables) and runs one connector. */
export async function runConnectorByName(
  ctx: AppContext,
  name: string,
  options: RunOptions = {},
): Promise<RunSummary> {
  const { connectors, invalid } = await prepareWarehouse(ctx);
  return runConnector(findConnectorDefinition(connectors, name, invalid), ctx, options);
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

/** Read-only: the definitions as they are in the folder (valid and skipped) beside their state in the warehouse. */
export async function fetchConnectorOverview(
  ctx: AppContext,
): Promise<{ connectors: ConnectorOverview[]; invalid: InvalidDefinition[] }> {
  const { definitions: defs, invalid } = await readConnectorFolder(ctx.config.connectorsDir);
  const states = await ctx
    .knex('hub_connectors as c')
    .leftJoin('hub_connector_runs as r', 'r.id', 'c.last_run_id')
    .select<
      Array<{ name: string; watermark: string | null; status: string | null; finished_at: string | null }>
    >('c.name', 'c.watermark', 'r.status', 'r.finished_at');
  const byName = new Map(states.map((s) => [s.name, s]));
  const connectors = defs.map((d) => ({
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
  return { connectors, invalid };
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

/** What a run's history row shows: the CLI's history, the portal's run list and run page. */
export const RUN_HISTORY_COLUMNS = [
  'id',
  'mode',
  'trigger',
  'status',
  'started_at',
  'finished_at',
  'rows_read',
  'rows_inserted',
  'rows_updated',
  'rows_deleted',
  'rows_rejected',
  'error',
] as const;

/** Read-only: the runs of a connector the warehouse knows, whether or not its file is still valid. */
export async function fetchRunHistory(ctx: AppContext, name: string, limit = 20): Promise<RunHistoryRow[]> {
  const known = await ctx.knex('hub_connectors').where({ name }).first<{ name: string } | undefined>('name');
  if (known === undefined) {
    const { definitions, invalid } = await readConnectorFolder(ctx.config.connectorsDir);
    findConnectorDefinition(definitions, name, invalid);
  }
  return ctx
    .knex<RunHistoryRow>('hub_connector_runs')
    .where('connector', name)
    .orderBy('id', 'desc')
    .limit(limit)
    .select(...RUN_HISTORY_COLUMNS);
}
