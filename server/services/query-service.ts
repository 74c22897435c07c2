import type { Knex } from 'knex';
import { fetchAbility } from '../../privileges/ability-cache.ts';
import type { TableAbility } from '../../privileges/ability.ts';
import type { CatalogTable } from '../../warehouse/catalog.ts';
import { authorizeQuery, isQueryRunnable } from '../../privileges/authorize-query.ts';
import { attachAuditNote } from '../../warehouse/audit/audit-note.ts';
import { permittedColumns } from '../../privileges/permitted-columns.ts';
import { recordAudit } from '../../warehouse/audit/record-audit.ts';
import { HubError, notFound } from '../../warehouse/core/errors.ts';
import { bindParams, type BoundParams } from '../../warehouse/query/bind-params.ts';
import {
  buildNextPosition,
  buildQueryPage,
  compilePageStart,
  compileQuery,
  describeCompiledSql,
  type CompiledSql,
  type KeysetPosition,
  type QueryPageRequest,
  type QueryRow,
} from '../../warehouse/query/compile-query.ts';
import { parseQueryDefinition, type QueryDefinition } from '../../warehouse/query/query-definition.ts';
import {
  deleteQueryRecord,
  fetchQueryRecord,
  fetchQueryRecords,
  fetchRunnableDefinition,
  saveQueryRecord,
} from '../../warehouse/query/saved-queries.ts';
import { pickRegistryReader, type AppContext } from '../context.ts';
import { assertEntityExists } from './client-service.ts';
import { readBuiltRows } from './registry-reads.ts';
import { buildPageTokenBinding, openPageToken, sealPageToken } from './query-page-token.ts';
import type { ApiCaller } from './token-service.ts';
import { inWriteTransaction } from '../../warehouse/write-transaction.ts';

export interface QueryRunInput {
  params?: unknown;
  page?: number;
  page_size?: number;
  /** A previous page's `next`: continue right after its last row. */
  next?: string;
}

export interface QueryRunResult {
  query: string;
  columns: string[];
  rows: Array<Record<string, unknown>>;
  page: number;
  page_size: number;
  has_more: boolean;
  /** Present, and true, only when the query's limit cut rows off. */
  truncated?: true;
  /** Present while rows remain: send it back as `next` for the page after this one. */
  next?: string;
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
  authorizeQuery(await fetchAbility(ctx, ctx.abilities, def.entity), def, await ctx.catalog.fetch());
}

/** A saved query becomes an endpoint of its entity; it may read only what the entity is granted. */
export async function saveQuery(ctx: AppContext, raw: unknown, actor: string): Promise<QueryDefinition> {
  const def = parseQueryDefinition(raw);
  await assertEntityExists(ctx.knex, def.entity);
  await authorizeDefinition(ctx, def);
  await inWriteTransaction(ctx.knex, async (trx) => {
    await saveQueryRecord(trx, def, actor, ctx.clock);
    await recordAudit(trx, ctx.clock, {
      actor,
      entity: def.entity,
      action: 'query.save',
      target: def.name,
      details: { definition: def },
    });
  });
  return def;
}

export async function deleteQuery(ctx: AppContext, name: string, actor: string): Promise<void> {
  const def = await fetchQueryRecord(ctx.knex, name);
  if (def === null) throw notFound(`no saved query named ${JSON.stringify(name)}`);
  await inWriteTransaction(ctx.knex, async (trx) => {
    await deleteQueryRecord(trx, name);
    await recordAudit(trx, ctx.clock, { actor, entity: def.entity, action: 'query.delete', target: name });
  });
}

const summarize = (d: QueryDefinition): QuerySummary => ({
  name: d.name,
  description: d.description,
  params: d.params,
  columns: d.columns,
  limit: d.limit,
});

/** Every saved query, or one entity's, whether or not its grants still allow it (the operator's view). */
export async function listQueries(ctx: AppContext, entity?: string): Promise<QuerySummary[]> {
  return (await fetchQueryRecords(ctx.reader, entity)).map((r) => summarize(r.definition));
}

/**
 * The caller's saved queries that would run now: every table and column each one reads
 * (listed, joined, selected, filtered, sorted) is readable by the entity and still in the
 * catalog. A query that would answer 403 or 400 is not offered, neither here nor in OpenAPI.
 */
export async function listRunnableQueries(ctx: AppContext, caller: ApiCaller): Promise<QuerySummary[]> {
  const ability = await fetchAbility(ctx, ctx.abilities, caller.entity);
  const catalog = await ctx.catalog.fetch();
  const records = await fetchQueryRecords(ctx.reader, caller.entity);
  return records
    .filter((r) => isQueryRunnable(ability, r.definition, catalog))
    .map((r) => summarize(r.definition));
}

/** Another entity's query answers 404, like a missing one: names of other entities' endpoints do not leak. */
async function fetchCallersQuery(ctx: AppContext, entity: string, name: string): Promise<QueryDefinition> {
  const def = QUERY_NAME.test(name) ? await fetchRunnableDefinition(ctx.reads, name) : null;
  if (def === null || def.entity !== entity) throw notFound(`no saved query named ${JSON.stringify(name)}`);
  return def;
}

function readPage(input: QueryRunInput): { page: number; pageSize: number } {
  if (input.next !== undefined && input.page !== undefined)
    throw new HubError('invalid_request', 400, 'next: send either page or next, not both');
  const page = input.page ?? 1;
  const pageSize = input.page_size ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(page) || page < 1)
    throw new HubError('invalid_request', 400, 'page: must be a positive integer');
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
    throw new HubError('invalid_request', 400, 'page_size: must be an integer from 1 to 1000');
  }
  return { page, pageSize };
}

/**
 * Runs a saved query for its entity's client. Grants are checked again at every run, so a
 * query saved yesterday answers 403 today if a column it reads was revoked. The national IDs
 * of the returned rows are fetched alongside (not returned) and go into the answer's audit
 * note, so the audit log can say whose data was read even when their IDs are not selected.
 */
export async function runSavedQuery(
  ctx: AppContext,
  caller: ApiCaller,
  name: string,
  input: QueryRunInput,
): Promise<QueryRunResult> {
  const def = await fetchCallersQuery(ctx, caller.entity, name);
  const { page, pageSize } = readPage(input);
  const catalog = await ctx.catalog.fetch();
  const ability = await fetchAbility(ctx, ctx.abilities, caller.entity);
  // compileQuery refuses on its own; asking first makes a revoked grant answer 403 before any parameter problem.
  authorizeQuery(ability, def, catalog);
  const params = bindParams(def, input.params ?? {});
  const binding = buildPageTokenBinding({ entity: caller.entity, query: def.name, definition: def, params });
  const after = input.next === undefined ? undefined : openPageToken(ctx.keyring, binding, input.next);
  const reader = pickRegistryReader(ctx);
  const start =
    after ?? (await findPageStart(ctx, reader, def, params, { page, pageSize }, catalog, ability));
  const compiled = compileQuery(
    reader,
    def,
    params,
    { page, pageSize, ...(start === undefined ? {} : { after: start }) },
    catalog,
    ability,
  );
  // Fetched for the audit only: it names whose data left the hub, and is never returned.
  const base = catalog.find((t) => t.name === def.tables[0])!;
  compiled.builder.select({ [NATIONAL_ID_ALIAS]: `${base.name}.${base.nationalIdColumn}` });
  const rows = await readBuiltRows<Record<string, unknown>>(ctx, compiled.builder);
  const result = buildQueryPage(compiled, rows);
  const nextPosition = buildNextPosition(compiled, rows);
  const subjects = rows.slice(0, compiled.take).map((r) => String(r[NATIONAL_ID_ALIAS]));
  return attachAuditNote(
    {
      query: def.name,
      columns: result.columns,
      rows: result.rows,
      page: compiled.page,
      page_size: pageSize,
      has_more: result.has_more,
      ...(result.truncated ? { truncated: true as const } : {}),
      ...(nextPosition === null ? {} : { next: sealPageToken(ctx.keyring, binding, nextPosition) }),
    },
    {
      details: {
        params,
        page: compiled.page,
        page_size: pageSize,
        ...(after === undefined ? {} : { after_rows: compiled.seen }),
        columns: result.columns,
        rows: result.rows.length,
      },
      subjects,
    },
  );
}

/**
 * Where a page asked for by number starts, found by reading only the sort keys of the rows
 * before it (compilePageStart); undefined where the page is read at its offset, or where the
 * rows end before it (the offset then finds no row either).
 */
async function findPageStart(
  ctx: AppContext,
  reader: Knex,
  def: QueryDefinition,
  params: BoundParams,
  page: QueryPageRequest,
  catalog: readonly CatalogTable[],
  ability: TableAbility,
): Promise<KeysetPosition | undefined> {
  const start = compilePageStart(reader, def, params, page, catalog, ability);
  if (start === null) return undefined;
  const [row] = await readBuiltRows<QueryRow>(ctx, start.builder);
  return row === undefined ? undefined : start.positionAfter(row);
}

/** The SQL a saved query's first page runs on this warehouse, with its parameters' defaults or placeholders. */
export async function fetchQuerySql(ctx: AppContext, name: string): Promise<CompiledSql> {
  const def = QUERY_NAME.test(name) ? await fetchQueryRecord(ctx.knex, name) : null;
  if (def === null) throw notFound(`no saved query named ${JSON.stringify(name)}`);
  const params = Object.fromEntries(
    Object.entries(def.params).map(([p, spec]) => [p, spec.default ?? placeholderFor(spec.type)]),
  );
  const ability = await fetchAbility(ctx, ctx.abilities, def.entity);
  const compiled = compileQuery(
    ctx.knex,
    def,
    params,
    { page: 1, pageSize: Math.min(def.limit, 1000) },
    await ctx.catalog.fetch(),
    ability,
  );
  return describeCompiledSql(compiled.builder);
}

export interface QueryPlan {
  sql: string;
  bindings: unknown[];
  /** The database's plan, one line per step, indented as a tree where the database gives one. */
  plan: string[];
  /** Required parameters not given, planned with a placeholder value. */
  placeholders: string[];
}

/** Parameter values as text (`--param k=v`), read as the parameter's type says. */
function readTextParams(def: QueryDefinition, given: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(given).map(([name, text]): [string, unknown] => {
      const type = def.params[name]?.type;
      if (type === 'integer' || type === 'number') return [name, text.trim() === '' ? text : Number(text)];
      if (type === 'boolean') return [name, text === 'true' ? true : text === 'false' ? false : text];
      return [name, text];
    }),
  );
}

interface SqlitePlanRow {
  id: number;
  parent: number;
  detail: string;
}

/** EXPLAIN QUERY PLAN rows as the sqlite3 shell draws them: each step under its parent. */
function drawSqlitePlan(rows: readonly SqlitePlanRow[]): string[] {
  const depth = new Map<number, number>([[0, -1]]);
  return rows.map((row) => {
    const level = (depth.get(row.parent) ?? -1) + 1;
    depth.set(row.id, level);
    return `${'   '.repeat(level)}${level === 0 ? '' : '`--'}${row.detail}`;
  });
}

/**
 * The database's plan for a saved query's first page, with the given parameter values (a
 * required one not given is planned with a placeholder, as `hub queries sql` shows it): EXPLAIN
 * QUERY PLAN on SQLite, EXPLAIN on PostgreSQL. It shows whether the declared indexes serve the
 * query. Planned with the grants of the query's entity, as its clients would run it.
 */
export async function fetchQueryPlan(
  ctx: AppContext,
  name: string,
  given: Record<string, string>,
): Promise<QueryPlan> {
  const def = QUERY_NAME.test(name) ? await fetchQueryRecord(ctx.knex, name) : null;
  if (def === null) throw notFound(`no saved query named ${JSON.stringify(name)}`);
  const values = readTextParams(def, given);
  const placeholders = Object.entries(def.params)
    .filter(([p, spec]) => spec.required && spec.default === undefined && !Object.hasOwn(values, p))
    .map(([p]) => p);
  for (const p of placeholders) values[p] = placeholderFor(def.params[p]!.type);
  const params = bindParams(def, values);
  const ability = await fetchAbility(ctx, ctx.abilities, def.entity);
  const compiled = compileQuery(
    ctx.reader,
    def,
    params,
    { page: 1, pageSize: Math.min(def.limit, 100) },
    await ctx.catalog.fetch(),
    ability,
  );
  const { sql, bindings } = compiled.builder.toSQL();
  const described = describeCompiledSql(compiled.builder);
  let plan: string[];
  if (ctx.warehouse.dialect === 'sqlite') {
    const rows = await ctx.reader.raw<SqlitePlanRow[]>(`EXPLAIN QUERY PLAN ${sql}`, bindings);
    plan = drawSqlitePlan(rows);
  } else if (ctx.warehouse.dialect === 'postgres') {
    const result = await ctx.reader.raw<{ rows: Array<{ 'QUERY PLAN': string }> }>(
      `EXPLAIN ${sql}`,
      bindings,
    );
    plan = result.rows.map((r) => r['QUERY PLAN']);
  } else {
    throw new HubError(
      'not_supported',
      400,
      `hub queries explain reads plans from SQLite and PostgreSQL; on ${ctx.warehouse.dialect} use hub queries sql and the database's own tools`,
    );
  }
  return { ...described, plan, placeholders };
}

function placeholderFor(type: string): string | number | boolean {
  if (type === 'integer' || type === 'number') return 0;
  if (type === 'boolean') return false;
  if (type === 'date') return '1970-01-01';
  return '';
}

export interface DefinitionRunResult {
  columns: string[];
  rows: Array<Record<string, unknown>>;
  has_more: boolean;
  /** Every row the definition matches, beyond this page too. */
  total_count: number;
}

/** The catalog columns ("table.column") the caller's entity may read now, with their types. */
export async function fetchReadableColumns(ctx: AppContext, caller: ApiCaller): Promise<Map<string, string>> {
  const ability = await fetchAbility(ctx, ctx.abilities, caller.entity);
  const readable = new Map<string, string>();
  for (const table of await ctx.catalog.fetch()) {
    const types = new Map(table.columns.map((c) => [c.name, c.type]));
    for (const column of permittedColumns(ability, table))
      readable.set(`${table.name}.${column}`, types.get(column) ?? 'string');
  }
  return readable;
}

/**
 * Runs a definition made for one request (a DCI search) instead of a saved one: validated and
 * authorized against the caller's grants as they are now, compiled by the same engine, counted
 * and audited with the national IDs of the rows returned, like a saved query.
 */
export async function runQueryDefinition(
  ctx: AppContext,
  caller: ApiCaller,
  raw: unknown,
  input: { page: number; pageSize: number; target: string },
): Promise<DefinitionRunResult> {
  const def = parseQueryDefinition({ ...(raw as object), entity: caller.entity });
  const catalog = await ctx.catalog.fetch();
  const ability = await fetchAbility(ctx, ctx.abilities, caller.entity);
  authorizeQuery(ability, def, catalog);
  const db = pickRegistryReader(ctx);
  const page = { page: input.page, pageSize: input.pageSize };
  const asked = compileQuery(db, def, {}, page, catalog, ability);
  const start = await findPageStart(ctx, db, def, {}, page, catalog, ability);
  const compiled =
    start === undefined ? asked : compileQuery(db, def, {}, { ...page, after: start }, catalog, ability);
  // Counted from the page's statement as asked for, before any start found by sort keys narrows it.
  const counted = asked.builder
    .clone()
    .clear('select')
    .clear('order')
    .clear('limit')
    .clear('offset')
    .select(db.raw('1 as one'));
  const [countRow] = await readBuiltRows<{ n: number | string }>(
    ctx,
    db.count({ n: '*' }).from(counted.as('hub_counted')),
  );
  const base = catalog.find((t) => t.name === def.tables[0])!;
  compiled.builder.select({ [NATIONAL_ID_ALIAS]: `${base.name}.${base.nationalIdColumn}` });
  const rows = await readBuiltRows<Record<string, unknown>>(ctx, compiled.builder);
  const result = buildQueryPage(compiled, rows);
  const subjects = [...new Set(rows.slice(0, input.pageSize).map((r) => String(r[NATIONAL_ID_ALIAS])))];
  await ctx.audit.append({
    actor: caller.clientId,
    entity: caller.entity,
    action: 'api.call',
    target: input.target,
    details: {
      definition: def,
      page: input.page,
      page_size: input.pageSize,
      columns: result.columns,
      rows: result.rows.length,
    },
    subjects,
  });
  return { ...result, total_count: Math.min(Number(countRow?.n ?? 0), def.limit) };
}
