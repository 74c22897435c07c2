import { QUERY_PARAM_TYPES, type BuilderTable } from '../services/query-builder-service.ts';

/** The builder's whole state travels in its form, so every step works without JavaScript. */
export interface BuilderState {
  tables: string[];
  join: 'inner' | 'left';
  columns: string[];
  conditions: Array<{ column: string; op: string; mode: 'value' | 'param'; value: string; param: string }>;
  sortColumn: string;
  sortDirection: 'asc' | 'desc';
  limit: string;
  name: string;
  description: string;
  paramValues: Record<string, string>;
  page: number;
}

const NO_OPERAND = new Set(['is_null', 'is_not_null']);
const LIST_OPERATORS = new Set(['in', 'not_in', 'between']);
/** A parameter takes its column's type when the query engine has a parameter type of that name, else string. */
const paramTypeOf = (columnType: string): string =>
  (QUERY_PARAM_TYPES as readonly string[]).includes(columnType) ? columnType : 'string';

type Body = Record<string, unknown>;
const text = (v: unknown): string =>
  typeof v === 'string' ? v.trim() : Array.isArray(v) && typeof v[0] === 'string' ? v[0].trim() : '';
const list = (v: unknown): string[] =>
  (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');

export function emptyBuilderState(): BuilderState {
  return {
    tables: [],
    join: 'inner',
    columns: [],
    conditions: [],
    sortColumn: '',
    sortDirection: 'asc',
    limit: '100',
    name: '',
    description: '',
    paramValues: {},
    page: 1,
  };
}

export function readBuilderState(body: Body, available: BuilderTable[]): BuilderState {
  const known = new Set(available.map((t) => t.name));
  const tables = list(body.tables).filter((t) => known.has(t));
  const conditions: BuilderState['conditions'] = [];
  for (let i = 0; i < 50; i += 1) {
    const column = text(body[`cond_column_${i}`]);
    if (column === '') continue;
    conditions.push({
      column,
      op: text(body[`cond_op_${i}`]) || '=',
      mode: text(body[`cond_mode_${i}`]) === 'param' ? 'param' : 'value',
      value: text(body[`cond_value_${i}`]),
      param: text(body[`cond_param_${i}`]),
    });
  }
  const paramValues: Record<string, string> = {};
  for (const [key, value] of Object.entries(body))
    if (key.startsWith('pval_')) paramValues[key.slice(5)] = text(value);
  const page = Number(text(body.page) || '1');
  return {
    tables,
    join: text(body.join) === 'left' ? 'left' : 'inner',
    columns: list(body.columns).filter((c) => tables.includes(c.split('.')[0] ?? '')),
    conditions,
    sortColumn: text(body.sort_column),
    sortDirection: text(body.sort_direction) === 'desc' ? 'desc' : 'asc',
    limit: text(body.limit) || '100',
    name: text(body.name),
    description: text(body.description),
    paramValues,
    page: Number.isInteger(page) && page > 0 ? page : 1,
  };
}

/** The saved-query definition the form describes, as PRODUCT.md writes it; the query service validates it. */
export function buildDefinition(
  state: BuilderState,
  entity: string,
  available: BuilderTable[],
  fallbackName: string,
): Record<string, unknown> {
  const typeOf = (ref: string) => {
    const [table, column] = ref.split('.');
    return available.find((t) => t.name === table)?.columns.find((c) => c.name === column)?.type ?? 'string';
  };
  const params: Record<string, { type: string; required: boolean }> = {};
  const conditions = state.conditions.map((c) => {
    if (NO_OPERAND.has(c.op)) return { column: c.column, op: c.op };
    const type = typeOf(c.column);
    if (c.mode === 'param' && !LIST_OPERATORS.has(c.op)) {
      params[c.param] = { type: paramTypeOf(type), required: true };
      return { column: c.column, op: c.op, param: c.param };
    }
    const value = LIST_OPERATORS.has(c.op)
      ? c.value.split(',').map((v) => convertValue(v.trim(), type))
      : convertValue(c.value, type);
    return { column: c.column, op: c.op, value };
  });
  const limit = Number(state.limit);
  return {
    name: state.name || fallbackName,
    entity,
    description: state.description,
    tables: state.tables,
    join: state.join,
    columns: state.columns,
    conditions,
    params,
    limit: Number.isInteger(limit) ? limit : state.limit,
    ...(state.sortColumn === ''
      ? {}
      : { order_by: [{ column: state.sortColumn, direction: state.sortDirection }] }),
  };
}

/** Parameter values typed as the definition declares them; the query engine checks them. */
export function buildParamValues(
  state: BuilderState,
  definition: Record<string, unknown>,
): Record<string, unknown> {
  const declared = (definition.params ?? {}) as Record<string, { type: string }>;
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const raw = state.paramValues[name];
    if (raw === undefined || raw === '') continue;
    values[name] = convertValue(raw, spec.type);
  }
  return values;
}

function convertValue(raw: string, type: string): string | number | boolean {
  if ((type === 'integer' || type === 'number') && raw !== '' && Number.isFinite(Number(raw)))
    return Number(raw);
  if (type === 'boolean' && (raw === 'true' || raw === 'false')) return raw === 'true';
  return raw;
}
