import { findAttributeColumn, type DciCollection, type DciMapping, type DciRegistry } from './dci-mapping.ts';

export type SearchReasonCode =
  | 'rjct.reference_id.invalid'
  | 'rjct.reference_id.duplicate'
  | 'rjct.timestamp.invalid'
  | 'rjct.search_criteria.invalid'
  | 'rjct.filter.invalid'
  | 'rjct.sort.invalid'
  | 'rjct.pagination.invalid'
  | 'rjct.search.too_many_records_found';

export interface Rejection {
  rejected: SearchReasonCode;
  message: string;
}

type Scalar = string | number | boolean;
export interface PlanCondition {
  column: string;
  op: string;
  value?: Scalar | Scalar[];
}

/** A search as the query engine takes it, with what is needed to shape the records. */
export interface SearchPlan {
  collection: DciCollection;
  definition: {
    name: string;
    tables: string[];
    join: 'left';
    columns: string[];
    conditions: PlanCondition[];
    order_by: Array<{ column: string; direction: 'asc' | 'desc' }>;
    limit: number;
  };
  /** Attribute name → column, for the attributes the sender may read. */
  attributes: Map<string, string>;
  page: number;
  pageSize: number;
}

export interface PlanInput {
  mapping: DciMapping;
  registry: DciRegistry;
  /** Columns the sender may read, with their catalog types. */
  readable: Map<string, string>;
  /** Today (YYYY-MM-DD), for age conditions. */
  today: string;
}

export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_PAGE_SIZE = 100;
/** Rows a search can reach through its pages; past it, criteria must be narrower. */
export const MAX_RECORDS = 10000;
const QUERY_TYPES = ['idtype-value', 'expression', 'predicate'];
const OPERATORS: Record<string, string> = {
  eq: '=',
  ne: '!=',
  lt: '<',
  le: '<=',
  lte: '<=',
  gt: '>',
  ge: '>=',
  gte: '>=',
  in: 'in',
  nin: 'not_in',
};
const NEGATED: Record<string, string> = {
  '=': '!=',
  '!=': '=',
  '<': '>=',
  '<=': '>',
  '>': '<=',
  '>=': '<',
  in: 'not_in',
  not_in: 'in',
};

const reject = (rejected: SearchReasonCode, message: string): Rejection => ({
  rejected,
  message: message.slice(0, 999),
});

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class PlanError extends Error {
  constructor(readonly rejection: Rejection) {
    super(rejection.message);
  }
}

const fail = (code: SearchReasonCode, message: string): never => {
  throw new PlanError(reject(code, message));
};

/** Turns one search_criteria (or a subscription filter) into a query plan, or says why it is rejected. */
export function buildSearchPlan(criteria: unknown, input: PlanInput): SearchPlan | Rejection {
  try {
    return planSearch(criteria, input);
  } catch (err) {
    if (err instanceof PlanError) return err.rejection;
    throw err;
  }
}

function planSearch(criteria: unknown, input: PlanInput): SearchPlan {
  if (!isObject(criteria)) fail('rjct.search_criteria.invalid', 'search_criteria: must be an object');
  const c = criteria as Record<string, unknown>;
  const queryType = c.query_type ?? c.filter_type;
  if (typeof queryType !== 'string' || !QUERY_TYPES.includes(queryType)) {
    fail(
      'rjct.search_criteria.invalid',
      `query_type: must be one of ${QUERY_TYPES.join(', ')}, not ${JSON.stringify(queryType ?? null)}`,
    );
  }
  const query = c.query ?? c.filter;
  if (query === undefined || query === null || query === '')
    fail('rjct.search_criteria.invalid', 'query: required');
  const { page, pageSize } = readPagination(c.pagination);
  const collection = chooseCollection(c, query, input);
  const columnsOf = (attribute: string) => findColumn(collection, attribute, input);

  const conditions: PlanCondition[] = collection.where.map((w) => {
    if (!input.readable.has(w.column))
      fail('rjct.search_criteria.invalid', `the ${collection.name} records are not available to this sender`);
    return { column: w.column, op: w.op, value: w.value };
  });
  for (const predicate of readPredicates(queryType as string, query, input.mapping)) {
    conditions.push(...buildConditions(predicate, columnsOf, input, collection));
  }
  const order_by = readSort(c.sort).map((s) => {
    const found =
      findAttributeColumn(collection, s.attribute) ??
      (isIdentifier(s.attribute, input.mapping) ? findAttributeColumn(collection, 'UIN') : null);
    if (found === null || !input.readable.has(found.column))
      fail(
        'rjct.sort.invalid',
        `sort: attribute ${JSON.stringify(s.attribute)} is not available in ${collection.name} records`,
      );
    return { column: found!.column, direction: s.order };
  });

  const attributes = new Map<string, string>();
  for (const [name, column] of Object.entries(collection.attributes))
    if (input.readable.has(column)) attributes.set(name, column);
  const columns = [...new Set(attributes.values())];
  const base = collection.tables[0]!;
  if (!columns.some((col) => col.startsWith(`${base}.`)))
    fail('rjct.search_criteria.invalid', `the ${collection.name} records are not available to this sender`);
  const used = new Set([...columns, ...conditions.map((x) => x.column)].map((col) => col.split('.')[0]!));
  if ((page - 1) * pageSize >= MAX_RECORDS)
    fail(
      'rjct.search.too_many_records_found',
      `only the first ${MAX_RECORDS} records can be paged through: narrow the criteria`,
    );
  return {
    collection,
    definition: {
      name: `dci-${input.registry}-search`,
      tables: collection.tables.filter((t) => t === base || used.has(t)),
      join: 'left',
      columns,
      conditions,
      order_by: dedupeOrder(order_by),
      limit: MAX_RECORDS,
    },
    attributes,
    page,
    pageSize,
  };
}

function dedupeOrder(order: Array<{ column: string; direction: 'asc' | 'desc' }>) {
  return order.filter((o, i) => order.findIndex((p) => p.column === o.column) === i);
}

function readPagination(raw: unknown): { page: number; pageSize: number } {
  if (raw === undefined || raw === null || raw === '') return { page: 1, pageSize: DEFAULT_PAGE_SIZE };
  if (!isObject(raw))
    return fail('rjct.pagination.invalid', 'pagination: must be an object with page_size and page_number');
  const pageSize = Number(raw.page_size);
  const page = raw.page_number === undefined || raw.page_number === '' ? 1 : Number(raw.page_number);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    fail('rjct.pagination.invalid', `pagination.page_size: must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  if (!Number.isInteger(page) || page < 1)
    fail('rjct.pagination.invalid', 'pagination.page_number: must be an integer from 1');
  return { page, pageSize };
}

function readSort(raw: unknown): Array<{ attribute: string; order: 'asc' | 'desc' }> {
  if (raw === undefined || raw === null || raw === '') return [];
  if (!Array.isArray(raw))
    return fail('rjct.sort.invalid', 'sort: must be a list of {attribute_name, sort_order}');
  return raw.map((s: unknown) => {
    if (!isObject(s) || typeof s.attribute_name !== 'string' || s.attribute_name === '')
      fail('rjct.sort.invalid', 'sort: each item needs an attribute_name');
    const order = (s as Record<string, unknown>).sort_order ?? 'asc';
    if (order !== 'asc' && order !== 'desc')
      fail('rjct.sort.invalid', 'sort.sort_order: must be asc or desc');
    return { attribute: (s as { attribute_name: string }).attribute_name, order: order as 'asc' | 'desc' };
  });
}

/** response_entity (social) wins over the expression's collection, which wins over the registry's default. */
function chooseCollection(c: Record<string, unknown>, query: unknown, input: PlanInput): DciCollection {
  const registry = input.mapping.registries[input.registry];
  if (registry === undefined)
    return fail('rjct.search_criteria.invalid', `this hub maps no ${input.registry} registry`);
  const template =
    isObject(query) && isObject(query.value) && isObject(query.value.expression)
      ? query.value.expression
      : null;
  const named = [c.response_entity, c.notify_record_type, template?.collection].find(
    (v) => typeof v === 'string' && v !== '',
  );
  if (typeof named === 'string') {
    const bare = named.split(':').pop()!.toLowerCase();
    const found = registry.collections.get(bare);
    if (found !== undefined) return found;
    if (named === c.response_entity || named === template?.collection) {
      fail(
        'rjct.search_criteria.invalid',
        `unknown collection ${JSON.stringify(named)} (use ${[...registry.collections.values()].map((x) => x.name).join(' or ')})`,
      );
    }
  }
  return registry.collections.get(registry.defaultCollection.toLowerCase())!;
}

interface Predicate {
  attribute: string;
  op: string;
  value: unknown;
}

const isIdentifier = (name: string, mapping: DciMapping) =>
  mapping.identifiers.some((i) => i.toLowerCase() === name.toLowerCase());

function readPredicates(queryType: string, query: unknown, mapping: DciMapping): Predicate[] {
  if (queryType === 'idtype-value') {
    if (
      !isObject(query) ||
      typeof query.type !== 'string' ||
      query.type === '' ||
      query.value === undefined ||
      isObject(query.value)
    ) {
      return fail(
        'rjct.search_criteria.invalid',
        'query: idtype-value needs {"type": "UIN", "value": "..."}',
      );
    }
    return [
      { attribute: isIdentifier(query.type, mapping) ? 'UIN' : query.type, op: '=', value: query.value },
    ];
  }
  if (Array.isArray(query)) return query.flatMap(readPredicateItem);
  if (isObject(query) && isObject(query.value) && isObject(query.value.expression)) {
    return readMongoFilter(query.value.expression.query ?? {}, false);
  }
  return fail(
    'rjct.search_criteria.invalid',
    `query: ${queryType} needs a list of {expression1, condition, expression2} or {"type", "value": {"expression": {"collection", "query"}}}`,
  );
}

/** {seq_num, expression1, condition, expression2[, expression3...]}: one item's expressions joined by its condition. */
function readPredicateItem(item: unknown): Predicate[] {
  if (!isObject(item) || !isObject(item.expression1))
    return fail('rjct.search_criteria.invalid', 'query: each item needs an expression1 object');
  const condition = typeof item.condition === 'string' && item.condition !== '' ? item.condition : 'and';
  const expressions = Object.keys(item)
    .filter((k) => /^expression\d+$/.test(k))
    .sort((a, b) => Number(a.slice(10)) - Number(b.slice(10)))
    .map((k) => item[k])
    .filter((e) => isObject(e));
  if (condition === 'or' && expressions.length > 1)
    return fail(
      'rjct.search_criteria.invalid',
      'condition "or" is not supported by this registry: send one search per alternative',
    );
  if (condition !== 'and' && condition !== 'not' && condition !== 'or')
    return fail(
      'rjct.search_criteria.invalid',
      `condition: must be and, or or not, not ${JSON.stringify(condition)}`,
    );
  return expressions.map((e, i) => {
    const { attribute_name: attribute, operator, attribute_value: value } = e;
    if (typeof attribute !== 'string' || typeof operator !== 'string')
      return fail(
        'rjct.search_criteria.invalid',
        'each expression needs attribute_name, operator and attribute_value',
      );
    const op = OPERATORS[operator.toLowerCase()];
    if (op === undefined)
      return fail(
        'rjct.search_criteria.invalid',
        `operator ${JSON.stringify(operator)} is not one of gt, lt, eq, ge, le, in`,
      );
    // "not" applies to the expression after it: expression1 and not expression2.
    return { attribute, op: condition === 'not' && i > 0 ? NEGATED[op]! : op, value };
  });
}

/** The social registry's NoSql expressions: {$and: [{attr: {$lt: 5}}, ...]} or {attr: value}. */
function readMongoFilter(filter: unknown, negate: boolean): Predicate[] {
  if (!isObject(filter)) return fail('rjct.search_criteria.invalid', 'expression.query: must be an object');
  const out: Predicate[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and') {
      if (!Array.isArray(value)) fail('rjct.search_criteria.invalid', '$and: must be a list');
      for (const part of value as unknown[]) out.push(...readMongoFilter(part, negate));
    } else if (key === '$or' || key === '$nor') {
      fail(
        'rjct.search_criteria.invalid',
        `${key} is not supported by this registry: send one search per alternative`,
      );
    } else if (key === '$not') {
      out.push(...readMongoFilter(value, !negate));
    } else if (key.startsWith('$')) {
      fail('rjct.search_criteria.invalid', `unknown operator ${key}`);
    } else if (isObject(value) && Object.keys(value).every((k) => k.startsWith('$'))) {
      for (const [op, operand] of Object.entries(value)) {
        const mapped = OPERATORS[op.slice(1).toLowerCase()];
        if (mapped === undefined) fail('rjct.search_criteria.invalid', `unknown operator ${op} on ${key}`);
        out.push({ attribute: key, op: negate ? NEGATED[mapped!]! : mapped!, value: operand });
      }
    } else {
      out.push({ attribute: key, op: negate ? '!=' : '=', value });
    }
  }
  return out;
}

function findColumn(
  collection: DciCollection,
  attribute: string,
  input: PlanInput,
): { name: string; column: string; type: string } {
  const found =
    findAttributeColumn(collection, attribute) ??
    (isIdentifier(attribute, input.mapping) ? findAttributeColumn(collection, 'UIN') : null);
  if (found === null)
    return fail(
      'rjct.filter.invalid',
      `attribute ${JSON.stringify(attribute)} is not known in ${collection.name} records`,
    );
  const type = input.readable.get(found.column);
  if (type === undefined)
    return fail(
      'rjct.filter.invalid',
      `attribute ${JSON.stringify(attribute)} is not available to this sender`,
    );
  return { ...found, type };
}

function buildConditions(
  p: Predicate,
  columnsOf: (attribute: string) => { name: string; column: string; type: string },
  input: PlanInput,
  collection: DciCollection,
): PlanCondition[] {
  const { name, column, type } = columnsOf(p.attribute);
  const values = Array.isArray(p.value) ? p.value : [p.value];
  if (p.op !== 'in' && p.op !== 'not_in' && Array.isArray(p.value))
    fail('rjct.filter.invalid', `${name}: a list needs the in operator`);
  if (values.length === 0 || values.length > 1000)
    fail('rjct.filter.invalid', `${name}: give 1 to 1000 values`);
  if (name.toLowerCase() === 'age') return buildAgeConditions(column, p.op, values[0], input.today);
  const codes = collection.codes[name] ?? {};
  const converted = values.map((v) => convertValue(name, type, codes, v));
  if (p.op === 'in' || p.op === 'not_in') return [{ column, op: p.op, value: converted }];
  return [{ column, op: p.op, value: converted[0]! }];
}

function convertValue(name: string, type: string, codes: Record<string, Scalar>, raw: unknown): Scalar {
  if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean')
    return fail('rjct.filter.invalid', `${name}: the value must be a string, number or boolean`);
  const coded = typeof raw === 'string' ? (codes[raw] ?? codes[raw.toLowerCase()]) : undefined;
  const value = coded ?? raw;
  switch (type) {
    case 'integer':
    case 'number': {
      const n = typeof value === 'number' ? value : Number(String(value).trim());
      if (String(value).trim() === '' || !Number.isFinite(n) || (type === 'integer' && !Number.isInteger(n)))
        return fail('rjct.filter.invalid', `${name}: must be a number`);
      return n;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (['true', '1', 'yes'].includes(String(value).toLowerCase())) return true;
      if (['false', '0', 'no'].includes(String(value).toLowerCase())) return false;
      return fail('rjct.filter.invalid', `${name}: must be true or false`);
    case 'date':
    case 'datetime': {
      const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}:\d{2}))?/.exec(String(value));
      if (m === null || Number.isNaN(Date.parse(m[1]!)))
        return fail('rjct.filter.invalid', `${name}: must be a date written YYYY-MM-DD`);
      return type === 'date' || m[2] === undefined ? m[1]! : `${m[1]} ${m[2]}`;
    }
    default:
      if (String(value).includes('\u0000'))
        return fail('rjct.filter.invalid', `${name}: must not contain a NUL character`);
      return String(value);
  }
}

function shiftYears(today: string, years: number): string {
  const [y, m, d] = today.split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y - years, m - 1, d));
  // 29 February minus a year is 1 March in Date.UTC; keep the last day of February instead.
  if (date.getUTCMonth() !== m - 1) date.setUTCDate(0);
  return date.toISOString().slice(0, 10);
}

/** age in whole years on `today`, as conditions on the birth date. */
function buildAgeConditions(column: string, op: string, raw: unknown, today: string): PlanCondition[] {
  const age = Number(raw);
  if (!Number.isInteger(age) || age < 0 || age > 200)
    return fail('rjct.filter.invalid', 'age: must be a whole number of years');
  const bornAfter = (years: number) => shiftYears(today, years);
  switch (op) {
    case '<':
      return [{ column, op: '>', value: bornAfter(age) }];
    case '<=':
      return [{ column, op: '>', value: bornAfter(age + 1) }];
    case '>':
      return [{ column, op: '<=', value: bornAfter(age + 1) }];
    case '>=':
      return [{ column, op: '<=', value: bornAfter(age) }];
    case '=':
      return [
        { column, op: '>', value: bornAfter(age + 1) },
        { column, op: '<=', value: bornAfter(age) },
      ];
    default:
      return fail('rjct.filter.invalid', 'age: use eq, lt, le, gt or ge');
  }
}
