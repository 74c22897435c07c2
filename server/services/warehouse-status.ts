import type { Knex } from 'knex';
import { fetchCatalog, type CatalogTable } from '../../warehouse/catalog.ts';
import { describeConnectionError } from '../../warehouse/db.ts';
import type { AppContext } from '../context.ts';

/** PostgreSQL's SQLSTATE when lock_timeout ran out. */
const LOCK_NOT_AVAILABLE = '55P03';

export interface WarehouseStatus {
  database: string;
  /** Null while a load holds the person key (see countPersons). */
  persons: number | null;
  tables: Array<
    Pick<CatalogTable, 'name' | 'entity' | 'label' | 'rowCount' | 'loadedAt' | 'connector'> & {
      columns: number;
    }
  >;
  lastRuns: Array<{
    connector: string;
    status: string;
    mode: string;
    finished_at: string | null;
    rows_read: number;
    rows_rejected: number;
    error: string | null;
  }>;
}

export type LastRun = WarehouseStatus['lastRuns'][number] & { entity: string };

/** The latest run of every connector (its `last_run_id`), by connector name; only those of `entity` when given. */
export async function fetchLastRuns(ctx: AppContext, entity?: string | null): Promise<LastRun[]> {
  const query = ctx
    .knex('hub_connector_runs as r')
    .join('hub_connectors as c', 'c.last_run_id', 'r.id')
    .orderBy('r.connector');
  if (entity !== undefined) query.where('c.entity', entity);
  const rows: LastRun[] = await query.select(
    'r.connector',
    'c.entity',
    'r.status',
    'r.mode',
    'r.finished_at',
    'r.rows_read',
    'r.rows_rejected',
    'r.error',
  );
  return rows.map((r) => ({ ...r, rows_read: Number(r.rows_read), rows_rejected: Number(r.rows_rejected) }));
}

/** How long the count waits for a lock on the person key before saying a load holds it. */
const PERSON_KEY_WAIT = '1s';

/**
 * The persons in the key, or null on PostgreSQL while a load holds the key's lock: a first load
 * into an empty key fills it under an exclusive lock (fillWithoutPrimaryKey), for as long as the
 * fill takes, and the hub's start waits for nothing that long.
 */
async function countPersons(ctx: AppContext): Promise<number | null> {
  const count = async (executor: Knex | Knex.Transaction) =>
    Number((await executor('hub_persons').count({ n: '*' }).first<{ n: number | string }>())?.n ?? 0);
  if (ctx.dialect.name !== 'postgres') return count(ctx.knex);
  try {
    return await ctx.knex.transaction(async (trx) => {
      await trx.raw(`SET LOCAL lock_timeout = '${PERSON_KEY_WAIT}'`);
      return count(trx);
    });
  } catch (err) {
    if ((err as { code?: unknown }).code === LOCK_NOT_AVAILABLE) return null;
    throw err;
  }
}

export async function fetchWarehouseStatus(ctx: AppContext): Promise<WarehouseStatus> {
  const catalog = await fetchCatalog(ctx.knex);
  const persons = await countPersons(ctx);
  const lastRuns = (await fetchLastRuns(ctx)).map(({ entity: _entity, ...run }) => run);
  return {
    database: ctx.warehouse.displayUrl,
    persons,
    tables: catalog.map((t) => ({
      name: t.name,
      entity: t.entity,
      label: t.label,
      rowCount: t.rowCount,
      loadedAt: t.loadedAt,
      connector: t.connector,
      columns: t.columns.length,
    })),
    lastRuns,
  };
}

/** The read replica as /healthz shows it: whether registry reads go to it, and its lag at the last check. */
export interface ReplicaHealth {
  status: 'ok' | 'lagging' | 'down';
  lag_ms: number | null;
}

export type WarehouseHealth = (
  | { status: 'ok'; database: string }
  | { status: 'unavailable'; database: string; error: { code: 'warehouse_unavailable'; message: string } }
) & { read_replica?: ReplicaHealth };

/**
 * Whether the warehouse answers, for load balancers and monitors: no location, no driver text.
 * The reason goes to the log, once per failed check, as one structured entry.
 */
export async function checkWarehouseHealth(ctx: AppContext): Promise<WarehouseHealth> {
  const replica = await describeReplica(ctx);
  const withReplica = replica === null ? {} : { read_replica: replica };
  try {
    await ctx.reader.raw('select 1 as ok');
    return { status: 'ok', database: ctx.dialect.name, ...withReplica };
  } catch (err) {
    ctx.logger.error(
      { reason: describeConnectionError(err) ?? (err as Error).message },
      'health check: the warehouse does not answer',
    );
    return {
      status: 'unavailable',
      database: ctx.dialect.name,
      error: { code: 'warehouse_unavailable', message: 'the warehouse does not answer' },
      ...withReplica,
    };
  }
}

/**
 * A replica that is down or lagging leaves the hub serving (reads go to the primary), so it does
 * not make the check fail; it is shown so monitors can alert on it. No location, no driver text.
 */
async function describeReplica(ctx: AppContext): Promise<ReplicaHealth | null> {
  if (ctx.replica === null) return null;
  const state = await ctx.replica.describe();
  return { status: state.status === 'starting' ? 'down' : state.status, lag_ms: state.lagMs };
}

/** What anyone may see without signing in: whether the hub serves, and which registries it holds, when loaded. */
export interface PublicStatus {
  status: WarehouseHealth['status'];
  registries: Array<{
    table: string;
    entity: string;
    label: { en: string; ar: string };
    loadedAt: string | null;
    lastRun: string | null;
  }>;
}

export async function fetchPublicStatus(ctx: AppContext): Promise<PublicStatus> {
  const health = await checkWarehouseHealth(ctx);
  if (health.status !== 'ok') return { status: health.status, registries: [] };
  const catalog = await ctx.catalog.fetch();
  const runs = await ctx
    .reader('hub_connectors as c')
    .leftJoin('hub_connector_runs as r', 'r.id', 'c.last_run_id')
    .select<Array<{ target_table: string; status: string | null }>>('c.target_table', 'r.status');
  const lastRun = new Map(runs.map((r) => [r.target_table, r.status]));
  return {
    status: 'ok',
    registries: catalog.map((t) => ({
      table: t.name,
      entity: t.entity,
      label: t.label,
      loadedAt: t.loadedAt,
      lastRun: lastRun.get(t.name) ?? null,
    })),
  };
}
