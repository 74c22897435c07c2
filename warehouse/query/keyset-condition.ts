import type { Knex } from 'knex';

/** A value a keyset compares with: what the last row of the previous page held in a sort key. */
export type KeyValue = string | number | boolean | null;

/** One sort key of a compiled query, in order. */
export interface KeysetKey {
  /** "table.column" */
  column: string;
  direction: 'asc' | 'desc';
  /** The query's rows can never hold NULL here (a NOT NULL key of a table every row has, or a filtered column). */
  notNull: boolean;
}

/** A condition as a small tree, simplified before it becomes SQL. */
export type KeysetPredicate = Predicate;
type Predicate =
  | { kind: 'true' }
  | { kind: 'false' }
  | { kind: 'compare'; column: string; op: '=' | '<' | '>' | '<=' | '>='; value: string | number | boolean }
  | { kind: 'null'; column: string }
  | { kind: 'not-null'; column: string }
  | { kind: 'and' | 'or'; parts: Predicate[] };

const TRUE: Predicate = { kind: 'true' };
const FALSE: Predicate = { kind: 'false' };

function and(...parts: Predicate[]): Predicate {
  if (parts.some((p) => p.kind === 'false')) return FALSE;
  const kept = parts.filter((p) => p.kind !== 'true');
  if (kept.length === 0) return TRUE;
  return kept.length === 1 ? kept[0]! : { kind: 'and', parts: kept };
}

function or(...parts: Predicate[]): Predicate {
  if (parts.some((p) => p.kind === 'true')) return TRUE;
  const kept = parts.filter((p) => p.kind !== 'false');
  if (kept.length === 0) return FALSE;
  return kept.length === 1 ? kept[0]! : { kind: 'or', parts: kept };
}

/**
 * Where each database puts NULL in an ascending order when the statement does not say: SQLite
 * and SQL Server below every value, PostgreSQL above. The keyset follows the database's own
 * order, which is also the order its indexes are kept in, so an index can serve the sort.
 */
const NULLS_LOW_BY_CLIENT: Record<string, boolean> = {
  'better-sqlite3': true,
  sqlite3: true,
  mssql: true,
  pg: false,
  postgres: false,
  postgresql: false,
};

export function sortsNullsLow(knex: Knex): boolean {
  const client = (knex.client as { config: { client: string } }).config.client;
  const low = NULLS_LOW_BY_CLIENT[client];
  if (low === undefined) throw new Error(`no NULL ordering known for knex client ${client}`);
  return low;
}

/** Rows strictly after the value in this key's order, rows level with it, and both at once. */
function compareKey(
  key: KeysetKey,
  value: KeyValue,
  nullsLow: boolean,
): { after: Predicate; level: Predicate; from: Predicate } {
  const { column } = key;
  const nullsLast = !key.notNull && (key.direction === 'asc') !== nullsLow;
  const nulls: Predicate = { kind: 'null', column };
  if (value === null) {
    return {
      after: nullsLast ? FALSE : { kind: 'not-null', column },
      level: nulls,
      from: nullsLast ? nulls : TRUE,
    };
  }
  const asc = key.direction === 'asc';
  const beyond: Predicate = { kind: 'compare', column, op: asc ? '>' : '<', value };
  const range: Predicate = { kind: 'compare', column, op: asc ? '>=' : '<=', value };
  return {
    after: nullsLast ? or(beyond, nulls) : beyond,
    level: { kind: 'compare', column, op: '=', value },
    from: nullsLast ? or(range, nulls) : range,
  };
}

/**
 * The rows that come after a position in the order (k1, k2, ... kn): k1 after v1, or k1 level
 * with v1 and k2 after v2, and so on. `inclusive` keeps the rows level with the position in
 * every key too, for an order that does not tell every row apart (the caller then skips the
 * ties it has already returned). A bound on the first key alone is added in front, a plain
 * range an index on that key can seek to, so a late page does not read the earlier ones.
 */
export function buildKeysetPredicate(
  keys: readonly KeysetKey[],
  values: readonly KeyValue[],
  options: { inclusive: boolean; nullsLow: boolean },
): Predicate {
  const compared = keys.map((key, i) => compareKey(key, values[i] ?? null, options.nullsLow));
  let rest: Predicate = options.inclusive ? TRUE : FALSE;
  for (let i = compared.length - 1; i >= 0; i--) {
    const { after, level } = compared[i]!;
    rest = or(after, and(level, rest));
  }
  const first = compared[0];
  if (first === undefined || compared.length === 1) return rest;
  return and(first.from, rest);
}

function emit(builder: Knex.QueryBuilder, predicate: Predicate, join: 'and' | 'or'): void {
  const where = join === 'and' ? builder.where.bind(builder) : builder.orWhere.bind(builder);
  switch (predicate.kind) {
    case 'true':
      return;
    case 'false':
      if (join === 'and') builder.whereRaw('1 = 0');
      else builder.orWhereRaw('1 = 0');
      return;
    case 'compare':
      where(predicate.column, predicate.op, predicate.value);
      return;
    case 'null':
      if (join === 'and') builder.whereNull(predicate.column);
      else builder.orWhereNull(predicate.column);
      return;
    case 'not-null':
      if (join === 'and') builder.whereNotNull(predicate.column);
      else builder.orWhereNotNull(predicate.column);
      return;
    case 'and':
    case 'or':
      where(function (this: Knex.QueryBuilder) {
        for (const part of predicate.parts) emit(this, part, predicate.kind);
      });
  }
}

/** Adds the keyset's condition to a statement, AND-ed with its other conditions. */
export function applyKeysetCondition(builder: Knex.QueryBuilder, predicate: Predicate): void {
  emit(builder, predicate, 'and');
}
