import { fetchCatalog, fetchEntities, type Label } from '../../warehouse/catalog.ts';
import type { AppContext } from '../context.ts';
import type { UserRecord } from './user-service.ts';
import { fetchLastRuns, type LastRun } from './warehouse-status.ts';

export interface Dashboard {
  entities: Array<{
    code: string;
    label: Label;
    tables: Array<{ name: string; label: Label; rowCount: number; loadedAt: string | null }>;
  }>;
  lastRuns: LastRun[];
  /** One entry per day, oldest first, the last one today (UTC). */
  apiCalls: Array<{ day: string; calls: number }>;
  alerts: {
    failedRuns: Dashboard['lastRuns'];
    expiringGrants: Array<{ entity: string; table: string; column: string | null; expires_at: string }>;
  };
}

const DAY_MS = 86_400_000;
const CHART_DAYS = 30;
const EXPIRY_WARNING_DAYS = 14;
/** Calls that read personal data through the API; tokens are not calls. */
const API_ACTIONS = ['api.call', 'query.run'];

/**
 * The home screen: a super admin sees the whole hub; a custodian or an entity admin sees the
 * registries, runs, calls and grants of its own entity (as owner or as consumer).
 */
export async function fetchDashboard(ctx: AppContext, user: UserRecord): Promise<Dashboard> {
  const everything = user.role === 'super-admin';
  const now = ctx.clock.now();
  const catalog = await fetchCatalog(ctx.knex);
  const entities = (await fetchEntities(ctx.knex))
    .filter((e) => everything || e.code === user.entity)
    .map((e) => ({
      ...e,
      tables: catalog
        .filter((t) => t.entity === e.code)
        .map((t) => ({ name: t.name, label: t.label, rowCount: t.rowCount, loadedAt: t.loadedAt })),
    }));

  const lastRuns = await fetchLastRuns(ctx, everything ? undefined : user.entity);

  const since = new Date(
    Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - (CHART_DAYS - 1) * DAY_MS,
  );
  const calls = ctx
    .knex('hub_audit')
    .whereIn('action', API_ACTIONS)
    .where('at', '>=', since.toISOString())
    .groupByRaw('substring(at, 1, 10)')
    .select(ctx.knex.raw('substring(at, 1, 10) as day'), ctx.knex.raw('count(*) as calls'));
  if (!everything) calls.where('entity', user.entity);
  const perDay = new Map(
    (await calls).map((r: { day: string; calls: number | string }) => [r.day, Number(r.calls)]),
  );
  const apiCalls = Array.from({ length: CHART_DAYS }, (_, i) => {
    const day = new Date(since.getTime() + i * DAY_MS).toISOString().slice(0, 10);
    return { day, calls: perDay.get(day) ?? 0 };
  });

  const ownTables = new Set(catalog.filter((t) => t.entity === user.entity).map((t) => t.name));
  const expiring = await ctx
    .knex('hub_grants')
    .whereNotNull('expires_at')
    .where('expires_at', '>', now.toISOString())
    .where('expires_at', '<=', new Date(now.getTime() + EXPIRY_WARNING_DAYS * DAY_MS).toISOString())
    .orderBy('expires_at')
    .select<Array<{ entity: string; table_name: string; column_name: string; expires_at: string }>>(
      'entity',
      'table_name',
      'column_name',
      'expires_at',
    );
  const expiringGrants = expiring
    .filter((g) => everything || g.entity === user.entity || ownTables.has(g.table_name))
    .map((g) => ({
      entity: g.entity,
      table: g.table_name,
      column: g.column_name === '' ? null : g.column_name,
      expires_at: g.expires_at,
    }));

  return {
    entities,
    lastRuns,
    apiCalls,
    alerts: { failedRuns: lastRuns.filter((r) => r.status === 'failed'), expiringGrants },
  };
}
