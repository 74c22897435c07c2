import type { Knex } from 'knex';
import type { TableAbility } from '../../privileges/ability.ts';
import { authorizeQuery } from '../../privileges/authorize-query.ts';
import type { CatalogTable } from '../catalog.ts';
import type { ColumnType } from '../core/column-types.ts';
import { HubError } from '../core/errors.ts';
import { normalizeValue } from '../core/normalize-row.ts';
import type { BoundParams } from './bind-params.ts';
import type {
  QueryCondition,
  QueryDefinition,
  ScalarValue,
  SingleValueOperator,
} from './query-definition.ts';
import {
  applyKeysetCondition,
  buildKeysetPredicate,
  sortsNullsLow,
  type KeysetKey,
  type KeyValue,
} from './keyset-condition.ts';
import { findCatalogColumn, findLikePatternProblem } from './validate-query.ts';

/**
 * Where a page starts: after so many rows (a page number), or right after the last row of the
 * previous page (a keyset position, which costs the same on every page).
 */
export interface QueryPageRequest {
  page: number;
  pageSize: number;
  after?: KeysetPosition;
}

/** The last row a page returned, as its sort key values: what a `next` token carries. */
export interface KeysetPosition {
  /** The sort keys the values belong to ("table.column asc|desc", ...): the order may change with the grants. */
  order: string;
  /** null: continue by counting rows (an order that cannot tell rows apart, where the run of ties began out of sight). */
  values: KeyValue[] | null;
  /** Rows returned so far over all pages (the definition's limit counts them). */
  seen: number;
  /** When the order does not tell every row apart: how many rows level with the values were already returned. */
  ties: number;
  /** The number of the page this position starts. */
  page: number;
}

export const MAX_PAGE_SIZE = 10000;

/** A selected column: SQL returns it as `alias` (c0, c1, ...), the API as `column` ("table.column"). */
export interface SelectedColumn {
  alias: string;
  column: string;
  type: ColumnType;
}

export type QueryRow = Record<string, unknown>;

/** A sort key of the page's statement and the alias its value is fetched under. */
export interface SortKey extends KeysetKey {
  alias: string;
  type: ColumnType;
}

export interface CompiledQuery {
  /** Awaiting it runs the page's statement. */
  builder: Knex.QueryBuilder<QueryRow, QueryRow[]>;
  columns: SelectedColumn[];
  /** The sort keys that decide where a page ends: enough of the order to place any row. */
  keys: SortKey[];
  /** The keys tell every row apart (each table's record key is among them), so no two rows are level. */
  distinct: boolean;
  /** The page's number, and the rows returned before it. */
  page: number;
  seen: number;
  /** The position the page continued from, if it did. */
  after: KeysetPosition | null;
  /** How many of the fetched rows the page returns; the statement fetches one more to look ahead. */
  take: number;
  /** The page ends at the definition's limit: a look-ahead row means rows were cut off, not more pages. */
  atLimit: boolean;
}

export interface QueryResultPage {
  columns: string[];
  rows: QueryRow[];
  has_more: boolean;
  /** The definition's limit cut rows off. */
  truncated: boolean;
}

const SQL_OPERATORS: Record<Exclude<SingleValueOperator, 'like' | 'starts_with'>, string> = {
  '=': '=',
  '!=': '<>',
  '<': '<',
  '<=': '<=',
  '>': '>',
  '>=': '>=',
};

/**
 * knex's whereLike emits no ESCAPE clause (and a Latin collation on SQL Server), so patterns are
 * written here: the same text on SQLite, PostgreSQL (standard_conforming_strings, on by default)
 * and SQL Server, where a backslash escapes the next character.
 */
const LIKE_SQL = "?? LIKE ? ESCAPE '\\'";

/** Makes text match itself in a LIKE pattern; `[` opens a character class on SQL Server. */
export function escapeLikeText(text: string): string {
  return text.replace(/[\\%_[]/g, (c) => `\\${c}`);
}

function assertPageRequest(page: QueryPageRequest): void {
  const problems: string[] = [];
  if (!Number.isSafeInteger(page.page) || page.page < 1) problems.push('page: must be an integer from 1');
  if (!Number.isSafeInteger(page.pageSize) || page.pageSize < 1 || page.pageSize > MAX_PAGE_SIZE) {
    problems.push(`page_size: must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  if (problems.length > 0)
    throw new HubError('invalid_request', 400, problems.join('; '), { fields: problems });
}

function findTable(catalog: readonly CatalogTable[], name: string): CatalogTable {
  const table = catalog.find((t) => t.name === name);
  if (table === undefined)
    throw new HubError('unknown_table', 400, `unknown table: ${name}`, { tables: [name] });
  return table;
}

function assertLikePattern(condition: QueryCondition, value: ScalarValue): void {
  const problem = findLikePatternProblem(String(value));
  if (problem === null) return;
  if ('param' in condition) {
    throw new HubError('invalid_parameter', 400, `params.${condition.param}: ${problem}`, {
      parameters: [condition.param],
    });
  }
  throw new HubError('invalid_request', 400, `${condition.column}: ${problem}`);
}

function applyCondition(
  builder: Knex.QueryBuilder<QueryRow, QueryRow[]>,
  condition: QueryCondition,
  params: BoundParams,
): void {
  const { column } = condition;
  switch (condition.op) {
    case 'is_null':
      builder.whereNull(column);
      return;
    case 'is_not_null':
      builder.whereNotNull(column);
      return;
    case 'in':
      builder.whereIn(column, condition.value);
      return;
    case 'not_in':
      builder.whereNotIn(column, condition.value);
      return;
    case 'between':
      builder.whereBetween(column, condition.value);
      return;
  }
  const value = 'param' in condition ? params[condition.param] : condition.value;
  // bindParams leaves out optional parameters that were not given: their conditions do not apply.
  if (value === undefined) return;
  switch (condition.op) {
    case 'like':
      assertLikePattern(condition, value);
      builder.whereRaw(LIKE_SQL, [column, value]);
      return;
    case 'starts_with':
      builder.whereRaw(LIKE_SQL, [column, `${escapeLikeText(String(value))}%`]);
      return;
    default:
      builder.where(column, SQL_OPERATORS[condition.op], value);
  }
}

function assertRequiredParams(def: QueryDefinition, params: BoundParams): void {
  const missing = Object.entries(def.params)
    .filter(([name, p]) => p.required && !Object.hasOwn(params, name))
    .map(([name]) => name);
  if (missing.length > 0) {
    throw new HubError(
      'invalid_parameter',
      400,
      missing.map((name) => `params.${name}: required parameter is missing`).join('; '),
      {
        parameters: missing,
      },
    );
  }
}

/**
 * Rows come back in one order that only readable values decide: the definition's order, then
 * the first table's national ID and each table's record key where the entity may read them, then
 * every selected column. Rows that tie on all of these carry the same values in every returned
 * column, so which of them comes first cannot be seen, and pages neither repeat nor skip
 * anything visible. A column the entity may not read never decides the order: it would show
 * through the order of the rows it does see.
 */
function buildOrder(
  def: QueryDefinition,
  tables: CatalogTable[],
  ability: TableAbility,
): { order: Array<{ column: string; order: 'asc' | 'desc' }>; distinctAfter: number | null } {
  const order = (def.order_by ?? []).map((o) => ({ column: o.column, order: o.direction }));
  const [base] = tables;
  const keys = [
    ...(base === undefined ? [] : [{ table: base.name, column: base.nationalIdColumn }]),
    ...tables.flatMap((t) => t.key.map((column) => ({ table: t.name, column }))),
  ];
  const tieBreakers = [
    ...keys.filter((k) => ability.can('read', k.table, k.column)).map((k) => `${k.table}.${k.column}`),
    ...def.columns,
  ];
  for (const column of tieBreakers) {
    if (!order.some((o) => o.column === column)) order.push({ column, order: 'asc' });
  }
  // A row is one record of each table (or none, on a left join); with every record key in the
  // order, the keys up to the last of them already tell all rows apart.
  const recordKeys = tables.flatMap((t) => t.key.map((column) => `${t.name}.${column}`));
  const positions = recordKeys.map((ref) => order.findIndex((o) => o.column === ref));
  const distinctAfter = positions.every((i) => i >= 0) ? Math.max(...positions) + 1 : null;
  return { order, distinctAfter };
}

/**
 * Columns no row of the result can hold NULL in: the record key and national ID of the first
 * table and of inner-joined tables (NOT NULL in every registry table), and any column an
 * applied condition other than is_null tests, since a comparison with NULL is never true. The
 * keyset needs no NULL case for them, which keeps its bounds plain ranges.
 */
function listNotNullColumns(def: QueryDefinition, tables: CatalogTable[], params: BoundParams): Set<string> {
  const keyed = def.join === 'inner' ? tables : tables.slice(0, 1);
  const columns = new Set(
    keyed.flatMap((t) => [t.nationalIdColumn, ...t.key].map((column) => `${t.name}.${column}`)),
  );
  for (const condition of def.conditions) {
    if (condition.op === 'is_null') continue;
    if ('param' in condition && params[condition.param] === undefined) continue;
    columns.add(condition.column);
  }
  return columns;
}

function assertPosition(after: KeysetPosition, keys: readonly SortKey[]): void {
  if (after.order !== describeKeys(keys) || (after.values !== null && after.values.length !== keys.length)) {
    throw new HubError(
      'invalid_request',
      400,
      "next: the query's order has changed since this token was issued (its grants changed); start again from page 1",
    );
  }
}

const describeKeys = (keys: readonly SortKey[]) => keys.map((k) => `${k.column} ${k.direction}`).join(',');

/** What every statement of a query shares: its columns, its sort keys and its rows (joins and conditions, not yet a select list). */
interface QueryPlan {
  builder: Knex.QueryBuilder<QueryRow, QueryRow[]>;
  columns: SelectedColumn[];
  order: Array<{ column: string; order: 'asc' | 'desc' }>;
  keys: SortKey[];
  distinct: boolean;
}

function planQuery(
  knex: Knex,
  def: QueryDefinition,
  params: BoundParams,
  catalog: readonly CatalogTable[],
  ability: TableAbility,
): QueryPlan {
  authorizeQuery(ability, def, catalog);
  assertRequiredParams(def, params);
  const tables = def.tables.map((name) => findTable(catalog, name));
  const [base, ...joined] = tables;
  if (base === undefined) throw new HubError('invalid_request', 400, 'tables: must name at least one table');

  const typeOf = (column: string) => findCatalogColumn(catalog, column)?.type ?? 'string';
  const columns: SelectedColumn[] = def.columns.map((column, i) => ({
    alias: `c${i}`,
    column,
    type: typeOf(column),
  }));
  const { order, distinctAfter } = buildOrder(def, tables, ability);
  const notNull = listNotNullColumns(def, tables, params);
  // A key that is also a returned column is read under its column's alias; the others get k0, k1, ...
  const keys: SortKey[] = order.slice(0, distinctAfter ?? order.length).map((o, i) => ({
    column: o.column,
    direction: o.order,
    notNull: notNull.has(o.column),
    alias: columns.find((c) => c.column === o.column)?.alias ?? `k${i}`,
    type: typeOf(o.column),
  }));
  const builder = knex.queryBuilder<QueryRow, QueryRow[]>();
  builder.from(base.name);
  for (const table of joined) {
    const on: [string, string] = [
      `${base.name}.${base.nationalIdColumn}`,
      `${table.name}.${table.nationalIdColumn}`,
    ];
    if (def.join === 'left') builder.leftJoin(table.name, ...on);
    else builder.join(table.name, ...on);
  }
  for (const condition of def.conditions) applyCondition(builder, condition, params);
  return { builder, columns, order, keys, distinct: distinctAfter !== null };
}

/**
 * Compiles one page of a saved query for the entity whose ability is given, and refuses (403)
 * when the statement would read a table or column the ability does not allow: no caller can
 * compile a read without saying whose read it is. Identifiers come only from the definition,
 * which is validated against the catalog first; every value is a binding. One row more than
 * the page is asked for, so that has_more and truncated need no count; the definition's limit
 * is the total over all pages.
 */
export function compileQuery(
  knex: Knex,
  def: QueryDefinition,
  params: BoundParams,
  page: QueryPageRequest,
  catalog: readonly CatalogTable[],
  ability: TableAbility,
): CompiledQuery {
  assertPageRequest(page);
  const { builder, columns, order, keys, distinct } = planQuery(knex, def, params, catalog, ability);
  builder.select(
    Object.fromEntries([
      ...columns.map((c) => [c.alias, c.column]),
      ...keys.filter((k) => k.alias.startsWith('k')).map((k) => [k.alias, k.column]),
    ]),
  );
  builder.orderBy(order);

  const after = page.after ?? null;
  let seen: number;
  let offset: number;
  if (after === null) {
    // A page past the limit returns nothing but still looks at the first row beyond the limit, so
    // it says truncated as the last page did (SQL Server refuses FETCH NEXT 0 ROWS anyway).
    seen = Math.min((page.page - 1) * page.pageSize, def.limit);
    offset = seen;
  } else if (after.values === null) {
    assertPosition(after, keys);
    seen = Math.min(after.seen, def.limit);
    offset = seen;
  } else {
    assertPosition(after, keys);
    const predicate = buildKeysetPredicate(keys, after.values, {
      inclusive: !distinct,
      nullsLow: sortsNullsLow(knex),
    });
    applyKeysetCondition(builder, predicate);
    seen = Math.min(after.seen, def.limit);
    // Rows level with the position in every key look alike in every readable column; skipping
    // as many of them as were returned continues the run of ties where the last page left it.
    offset = distinct ? 0 : after.ties;
  }
  const take = Math.min(def.limit - seen, page.pageSize);
  builder.limit(take + 1);
  if (offset > 0) builder.offset(offset);
  return {
    builder,
    columns,
    keys,
    distinct,
    page: after?.page ?? page.page,
    seen,
    after,
    take,
    atLimit: seen + take === def.limit,
  };
}

/** The statement that finds where a page asked for by number starts, and how its row becomes that position. */
export interface PageStart {
  /** Awaiting it gives the last row before the page, or none when the rows end before it. */
  builder: Knex.QueryBuilder<QueryRow, QueryRow[]>;
  positionAfter(row: QueryRow): KeysetPosition;
}

/**
 * For a page asked for by number, past the first and within the definition's limit, where the
 * order tells every row apart: the statement that finds the last row before the page, reading
 * only the sort keys of the rows it skips. The page then continues from that row as from a
 * `next` token, and holds the same rows as at its offset, since no two rows are level in the
 * order. Skipping rows still costs their count, but without reading the page's other columns or
 * sorting by them it costs less (about 0.6 of the offset on SQLite). Null where the page is read
 * at its offset.
 */
export function compilePageStart(
  knex: Knex,
  def: QueryDefinition,
  params: BoundParams,
  page: QueryPageRequest,
  catalog: readonly CatalogTable[],
  ability: TableAbility,
): PageStart | null {
  assertPageRequest(page);
  const before = (page.page - 1) * page.pageSize;
  if (page.after !== undefined || before === 0 || before >= def.limit) return null;
  const { builder, keys, distinct } = planQuery(knex, def, params, catalog, ability);
  if (!distinct) return null;
  builder
    .select(Object.fromEntries(keys.map((k) => [k.alias, k.column])))
    .orderBy(keys.map((k) => ({ column: k.column, order: k.direction })))
    .limit(1)
    .offset(before - 1);
  return {
    builder,
    positionAfter: (row) => ({
      order: describeKeys(keys),
      values: keys.map((k) => toKeyValue(k.type, row[k.alias])),
      seen: before,
      ties: 0,
      page: page.page,
    }),
  };
}

/** A key's value as the next statement binds it: the driver's value in its JSON form. */
function toKeyValue(type: ColumnType, raw: unknown): KeyValue {
  const value = normalizeValue(type, raw);
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return value;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  throw new Error(`a sort key of type ${type} returned a value that cannot be compared again`);
}

const sameValues = (a: readonly KeyValue[], b: readonly KeyValue[]) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Where the page after this one starts, from the rows the statement returned; null when no page
 * follows (no look-ahead row, or the definition's limit is reached).
 */
export function buildNextPosition(compiled: CompiledQuery, rows: readonly QueryRow[]): KeysetPosition | null {
  if (rows.length <= compiled.take || compiled.atLimit) return null;
  const returned = rows.slice(0, compiled.take);
  const last = returned.at(-1);
  if (last === undefined) return null;
  const valuesOf = (row: QueryRow) => compiled.keys.map((k) => toKeyValue(k.type, row[k.alias]));
  const values = valuesOf(last);
  let ties = 0;
  let continuable = true;
  if (!compiled.distinct) {
    while (ties < returned.length && sameValues(valuesOf(returned[returned.length - 1 - ties]!), values))
      ties++;
    if (ties === returned.length && compiled.seen > 0) {
      // The whole page is level with its last row: the run of ties may have begun on an earlier
      // page. After a keyset position it began here unless it carries the same values; after a
      // page number it cannot be told, so the next page continues by counting rows.
      const previous = compiled.after;
      if (previous?.values == null) continuable = false;
      else if (sameValues(previous.values, values)) ties += previous.ties;
    }
  }
  return {
    order: describeKeys(compiled.keys),
    values: continuable ? values : null,
    seen: compiled.seen + returned.length,
    ties,
    page: compiled.page + 1,
  };
}

export interface CompiledSql {
  sql: string;
  bindings: unknown[];
}

/** The statement as the driver receives it ($1 on PostgreSQL, @p0 on SQL Server), for `hub queries sql`. */
export function describeCompiledSql(builder: Knex.QueryBuilder): CompiledSql {
  const native = builder.toSQL().toNative();
  return { sql: native.sql, bindings: [...native.bindings] };
}

/**
 * A returned row under the API's names. Built by assignment, in one shape for every row of a
 * page: Object.fromEntries made each row from an array of pairs, and mapping and serializing a
 * page of 100 rows took twice as long. Every name is "table.column", never an accessor of Object.
 */
function renameRow(columns: readonly SelectedColumn[], row: QueryRow): QueryRow {
  const renamed: QueryRow = {};
  for (const c of columns) renamed[c.column] = normalizeValue(c.type, row[c.alias]);
  return renamed;
}

/**
 * Renames c0, c1, ... back to "table.column" and drops the look-ahead row. A look-ahead row
 * below the limit means another page (has_more); at the limit it means the limit cut rows off.
 */
export function buildQueryPage(compiled: CompiledQuery, rows: readonly QueryRow[]): QueryResultPage {
  const beyond = rows.length > compiled.take;
  return {
    columns: compiled.columns.map((c) => c.column),
    rows: rows.slice(0, compiled.take).map((row) => renameRow(compiled.columns, row)),
    has_more: beyond && !compiled.atLimit,
    truncated: beyond && compiled.atLimit,
  };
}
