import { fetchAbility } from '../../privileges/ability-cache.ts';
import { authorizeColumns } from '../../privileges/authorize-query.ts';
import { recordAudit } from '../../warehouse/audit/record-audit.ts';
import { HubError, notFound } from '../../warehouse/core/errors.ts';
import { bindParams } from '../../warehouse/query/bind-params.ts';
import { buildQueryPage, compileQuery, describeCompiledSql, type CompiledSql } from '../../warehouse/query/compile-query.ts';
import { parseQueryDefinition, type QueryDefinition } from '../../warehouse/query/query-definition.ts';
import { deleteQueryRecord, fetchQueryRecord, fetchQueryRecords, saveQueryRecord } from '../../warehouse/query/saved-queries.ts';
import { validateQueryDefinition } from '../../warehouse/query/validate-query.ts';
import type { AppContext } from '../context.ts';
import { assertEntityExists } from './client-service.ts';
import type { ApiCaller } from './token-service.ts';

export interface QueryRunInput {
  params?: unknown;
  page?: number;
  page_size?: number;
}

export interface QueryRunResult {
  query: string;
  columns: string[];
  rows: Array<Record<string, unknown>>;
  page: number;
  page_size: number;
  has_more: boolean;
}

export interface QuerySummary {
  name: string;
  description: string;
  params: QueryDefinition['params'];
  columns: string[];
  limit: number;
}

const DEFAULT_PAGE_SIZE = 100;
const NATIONAL_ID_ALIAS = 'hub_nid';
const QUERY_NAME = /^[a-z][a-z0-9-]{0,63}$/;

/** Checks a definition against the catalog and the entity's grants as they are now. */
export async function authorizeDefinition(ctx: AppContext, def: QueryDefinition): Promise<void> {
  const refs = validateQueryDefinition(def, await ctx.catalog.fetch());
  authorizeColumns(await fetchAbility(ctx, ctx.abilities, def.entity), refs);
}

/** A saved query becomes an endpoint of its entity; it may read only what the entity is granted. */
export async function saveQuery(ctx: AppContext, raw: unknown, actor: string): Promise<QueryDefinition> {
  const def = parseQueryDefinition(raw);
  await assertEntityExists(ctx.knex, def.entity);
  await authorizeDefinition(ctx, def);
  await ctx.knex.transaction(async (trx) => {
    await saveQueryRecord(trx, def, actor, ctx.clock);
    await recordAudit(trx, ctx.clock, { actor, entity: def.entity, action: 'query.save', target: def.name, details: { definition: def } });
  });
  return def;
}

export async function deleteQuery(ctx: AppContext, name: string, actor: string): Promise<void> {
  const def = await fetchQueryRecord(ctx.knex, name);
  if (def === null) throw notFound(`no saved query named ${JSON.stringify(name)}`);
  await ctx.knex.transaction(async (trx) => {
    await deleteQueryRecord(trx, name);
    await recordAudit(trx, ctx.clock, { actor, entity: def.entity, action: 'query.delete', target: name });
  });
}

export async function listQueries(ctx: AppContext, entity?: string): Promise<QuerySummary[]> {
  const records = await fetchQueryRecords(ctx.knex, entity);
  return records.map(({ definition: d }) => ({ name: d.name, description: d.description, params: d.params, columns: d.columns, limit: d.limit }));
}

/** Another entity's query answers 404, like a missing one: names of other entities' endpoints do not leak. */
async function fetchCallersQuery(ctx: AppContext, entity: string, name: string): Promise<QueryDefinition> {
  const def = QUERY_NAME.test(name) ? await fetchQueryRecord(ctx.knex, name) : null;
  if (def === null || def.entity !== entity) throw notFound(`no saved query named ${JSON.stringify(name)}`);
  return def;
}

function readPage(input: QueryRunInput): { page: number; pageSize: number } {
  const page = input.page ?? 1;
  const pageSize = input.page_size ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(page) || page < 1) throw new HubError('invalid_request', 400, 'page: must be a positive integer');
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
    throw new HubError('invalid_request', 400, 'page_size: must be an integer from 1 to 1000');
  }
  return { page, pageSize };
}

/**
 * Runs a saved query for its entity's client. Grants are checked again at every run, so a
 * query saved yesterday answers 403 today if a column it reads was revoked. The national IDs
 * of the returned rows are fetched alongside (not returned) so the audit log can say whose
 * data was read.
 */
export async function runSavedQuery(ctx: AppContext, caller: ApiCaller, name: string, input: QueryRunInput): Promise<QueryRunResult> {
  const def = await fetchCallersQuery(ctx, caller.entity, name);
  const { page, pageSize } = readPage(input);
  const catalog = await ctx.catalog.fetch();
  await authorizeDefinition(ctx, def);
  const params = bindParams(def, input.params ?? {});
  const compiled = compileQuery(ctx.knex, def, params, { page, pageSize }, catalog);
  const base = catalog.find((t) => t.name === def.tables[0])!;
  compiled.builder.select({ [NATIONAL_ID_ALIAS]: `${base.name}.${base.nationalIdColumn}` });
  const rows = await compiled.builder;
  const result = buildQueryPage(compiled, rows);
  const subjects = rows.slice(0, pageSize).map((r) => String(r[NATIONAL_ID_ALIAS]));
  await ctx.audit.append({
    actor: caller.clientId,
    entity: caller.entity,
    action: 'query.run',
    target: `POST /api/v1/queries/${def.name}`,
    details: { params, page, page_size: pageSize, columns: result.columns, rows: result.rows.length },
    subjects,
  });
  return { query: def.name, columns: result.columns, rows: result.rows, page, page_size: pageSize, has_more: result.has_more };
}

/** The SQL a saved query's first page runs on this warehouse, with its parameters' defaults or placeholders. */
export async function fetchQuerySql(ctx: AppContext, name: string): Promise<CompiledSql> {
  const def = await fetchQueryRecord(ctx.knex, name);
  if (def === null) throw notFound(`no saved query named ${JSON.stringify(name)}`);
  const params = Object.fromEntries(
    Object.entries(def.params).map(([p, spec]) => [p, spec.default ?? placeholderFor(spec.type)]),
  );
  const compiled = compileQuery(ctx.knex, def, params, { page: 1, pageSize: Math.min(def.limit, 1000) }, await ctx.catalog.fetch());
  return describeCompiledSql(compiled.builder);
}

function placeholderFor(type: string): string | number | boolean {
  if (type === 'integer' || type === 'number') return 0;
  if (type === 'boolean') return false;
  if (type === 'date') return '1970-01-01';
  return '';
}
