import { fetchAbility } from '../../privileges/ability-cache.ts';
import type { TableAbility } from '../../privileges/ability.ts';
import { permittedColumns } from '../../privileges/permitted-columns.ts';
import type { Label } from '../../warehouse/catalog.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import { bindParams } from '../../warehouse/query/bind-params.ts';
import {
  buildQueryPage,
  compileQuery,
  describeCompiledSql,
  type CompiledSql,
} from '../../warehouse/query/compile-query.ts';
import { parseQueryDefinition, type QueryDefinition } from '../../warehouse/query/query-definition.ts';
import { fetchQueryRecords } from '../../warehouse/query/saved-queries.ts';
import type { AppContext } from '../context.ts';

// The builder's form offers exactly what the query engine accepts; routes may not import warehouse/query.
export {
  OPERATORS as QUERY_OPERATORS,
  PARAM_TYPES as QUERY_PARAM_TYPES,
} from '../../warehouse/query/query-definition.ts';
import { authorizeDefinition } from './query-service.ts';

export type { CompiledSql };

export interface BuilderTable {
  name: string;
  entity: string;
  label: Label;
  nationalIdColumn: string;
  columns: Array<{ name: string; label: Label; type: string }>;
}

export interface BuilderRun {
  columns: string[];
  rows: Array<Record<string, unknown>>;
  page: number;
  page_size: number;
  has_more: boolean;
  /** Rows the whole query returns, up to its limit. */
  count: number;
}

export interface SavedQueryStatus {
  definition: QueryDefinition;
  savedBy: string;
  savedAt: string;
  /** "table.column" names no longer granted: the query answers 403 until they are granted again. */
  denied: string[];
  lastRuns: Array<{ at: string; actor: string; rows: number | null }>;
}

const NATIONAL_ID_ALIAS = 'hub_nid';
const BUILDER_PAGE_SIZE = 20;
const LAST_RUNS = 5;

/** What the entity may read now: its own tables and its grants, only the permitted columns. */
export async function fetchBuilderTables(ctx: AppContext, entity: string): Promise<BuilderTable[]> {
  const ability = await fetchAbility(ctx, ctx.abilities, entity);
  const catalog = await ctx.catalog.fetch();
  return catalog.flatMap((table) => {
    const allowed = new Set(permittedColumns(ability, table));
    if (allowed.size === 0) return [];
    const columns = table.columns
      .filter((c) => allowed.has(c.name))
      .map((c) => ({ name: c.name, label: c.label, type: c.type }));
    return [
      {
        name: table.name,
        entity: table.entity,
        label: table.label,
        nationalIdColumn: table.nationalIdColumn,
        columns,
      },
    ];
  });
}

/** The definition checked as a save would check it: the catalog, then the entity's grants. */
async function assertBuildable(
  ctx: AppContext,
  raw: unknown,
): Promise<{ def: QueryDefinition; ability: TableAbility }> {
  const def = parseQueryDefinition(raw);
  await authorizeDefinition(ctx, def);
  return { def, ability: await fetchAbility(ctx, ctx.abilities, def.entity) };
}

/** The SQL of the first page on this warehouse, parameters as bindings. */
export async function describeBuilderSql(
  ctx: AppContext,
  raw: unknown,
  params: unknown,
): Promise<CompiledSql> {
  const { def, ability } = await assertBuildable(ctx, raw);
  const bound = bindParams(def, params);
  const compiled = compileQuery(
    ctx.reader,
    def,
    bound,
    { page: 1, pageSize: Math.min(def.limit, BUILDER_PAGE_SIZE) },
    await ctx.catalog.fetch(),
    ability,
  );
  return describeCompiledSql(compiled.builder);
}

/**
 * One page of an unsaved query for the portal user, and how many rows the whole query returns.
 * Audited like an API run, with the national IDs whose data was shown.
 */
export async function runBuilderQuery(
  ctx: AppContext,
  actor: string,
  raw: unknown,
  params: unknown,
  page: number,
): Promise<BuilderRun> {
  const { def, ability } = await assertBuildable(ctx, raw);
  if (!Number.isInteger(page) || page < 1)
    throw new HubError('invalid_request', 400, 'page: must be a positive integer');
  const bound = bindParams(def, params);
  const catalog = await ctx.catalog.fetch();
  const compiled = compileQuery(
    ctx.reader,
    def,
    bound,
    { page, pageSize: BUILDER_PAGE_SIZE },
    catalog,
    ability,
  );
  const base = catalog.find((t) => t.name === def.tables[0])!;
  compiled.builder.select({ [NATIONAL_ID_ALIAS]: `${base.name}.${base.nationalIdColumn}` });
  const rows = await compiled.builder;
  const result = buildQueryPage(compiled, rows);
  const all = compileQuery(
    ctx.reader,
    def,
    bound,
    { page: 1, pageSize: def.limit },
    catalog,
    ability,
  ).builder.clearOrder();
  const counted = await ctx.reader.count({ n: '*' }).from(all.as('q')).first<{ n: number | string }>();
  await ctx.audit.append({
    actor,
    entity: def.entity,
    action: 'query.run',
    target: 'portal query builder',
    details: { definition: def, params: bound, page, columns: result.columns, rows: result.rows.length },
    subjects: rows.slice(0, BUILDER_PAGE_SIZE).map((r) => String(r[NATIONAL_ID_ALIAS])),
  });
  return {
    ...result,
    page,
    page_size: BUILDER_PAGE_SIZE,
    count: Math.min(Number(counted?.n ?? 0), def.limit),
  };
}

/** The entity's saved queries, each checked against the grants as they are now, with its last runs. */
export async function fetchSavedQueryStatus(
  ctx: AppContext,
  entity: string | null,
): Promise<SavedQueryStatus[]> {
  const records = await fetchQueryRecords(ctx.knex, entity ?? undefined);
  const statuses: SavedQueryStatus[] = [];
  for (const record of records) {
    let denied: string[] = [];
    try {
      await authorizeDefinition(ctx, record.definition);
    } catch (err) {
      // A revoked table or column (403), or a column the catalog no longer has (400): the endpoint would refuse.
      if (!(err instanceof HubError) || (err.status !== 403 && err.status !== 400)) throw err;
      denied = (err.details?.denied as string[] | undefined) ?? [err.message];
    }
    const runs = await ctx
      .knex('hub_audit')
      .where({ action: 'query.run', target: `POST /api/v1/queries/${record.definition.name}` })
      .orderBy('id', 'desc')
      .limit(LAST_RUNS)
      .select<Array<{ at: string; actor: string; details: string }>>('at', 'actor', 'details');
    statuses.push({
      ...record,
      denied,
      lastRuns: runs.map((r) => ({ at: r.at, actor: r.actor, rows: readRowCount(r.details) })),
    });
  }
  return statuses;
}

function readRowCount(details: string): number | null {
  try {
    const rows = (JSON.parse(details) as { rows?: unknown }).rows;
    return typeof rows === 'number' ? rows : null;
  } catch {
    return null;
  }
}
