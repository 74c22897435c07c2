import { fetchCatalog, type CatalogTable } from '../../warehouse/catalog.ts';
import type { AppContext } from '../context.ts';

export interface WarehouseStatus {
  database: string;
  persons: number;
  tables: Array<Pick<CatalogTable, 'name' | 'entity' | 'label' | 'rowCount' | 'loadedAt' | 'connector'> & { columns: number }>;
  lastRuns: Array<{ connector: string; status: string; mode: string; finished_at: string | null; rows_read: number; rows_rejected: number; error: string | null }>;
}

export async function fetchWarehouseStatus(ctx: AppContext): Promise<WarehouseStatus> {
  const catalog = await fetchCatalog(ctx.knex);
  const persons = await ctx.knex('hub_persons').count({ n: '*' }).first<{ n: number | string }>();
  const lastRuns = await ctx.knex('hub_connector_runs as r')
    .join('hub_connectors as c', 'c.last_run_id', 'r.id')
    .orderBy('r.connector')
    .select('r.connector', 'r.status', 'r.mode', 'r.finished_at', 'r.rows_read', 'r.rows_rejected', 'r.error');
  return {
    database: ctx.warehouse.displayUrl,
    persons: Number(persons?.n ?? 0),
    tables: catalog.map((t) => ({
      name: t.name,
      entity: t.entity,
      label: t.label,
      rowCount: t.rowCount,
      loadedAt: t.loadedAt,
      connector: t.connector,
      columns: t.columns.length,
    })),
    lastRuns: lastRuns as WarehouseStatus['lastRuns'],
  };
}

export async function checkWarehouseHealth(ctx: AppContext): Promise<{ status: 'ok'; database: string }> {
  await ctx.knex.raw('select 1');
  return { status: 'ok', database: ctx.dialect.name };
}
