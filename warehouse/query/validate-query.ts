import type { CatalogColumn, CatalogTable } from '../catalog.ts';
import type { ColumnType } from '../core/column-types.ts';
import { HubError } from '../core/errors.ts';
import {
  findValueProblem,
  type ParamType,
  type QueryCondition,
  type QueryDefinition,
} from './query-definition.ts';

/** One column a query reads; the caller authorizes each against the entity's grants. */
export interface ColumnRef {
  table: string;
  column: string;
}

/** Everything a query's statement reads before any tie-break: each must be readable by its entity. */
export interface QueryReads {
  tables: string[];
  columns: ColumnRef[];
}

export function splitColumnRef(ref: string): ColumnRef {
  const dot = ref.indexOf('.');
  return { table: ref.slice(0, dot), column: ref.slice(dot + 1) };
}

export function findCatalogColumn(catalog: readonly CatalogTable[], ref: string): CatalogColumn | undefined {
  const { table, column } = splitColumnRef(ref);
  return catalog.find((t) => t.name === table)?.columns.find((c) => c.name === column);
}

/** select, then conditions, then order_by; each column once. */
export function listNamedColumns(def: QueryDefinition): string[] {
  const refs = [
    ...def.columns,
    ...def.conditions.map((c) => c.column),
    ...(def.order_by ?? []).map((o) => o.column),
  ];
  return [...new Set(refs)];
}

/**
 * The tables and columns a query's statement reads: every listed table (an inner join filters
 * and multiplies rows by it, a left join multiplies them), the named columns, and, when tables
 * are joined, the national ID column of each, which decides which rows meet.
 */
function listQueryReads(def: QueryDefinition, catalog: readonly CatalogTable[]): QueryReads {
  const joinKeys =
    def.tables.length > 1
      ? def.tables.flatMap((name) => {
          const table = catalog.find((t) => t.name === name);
          return table === undefined ? [] : [`${name}.${table.nationalIdColumn}`];
        })
      : [];
  const refs = [...new Set([...listNamedColumns(def), ...joinKeys])];
  return { tables: [...def.tables], columns: refs.map(splitColumnRef) };
}

const PARAM_TYPES_FOR: Record<ColumnType, readonly ParamType[]> = {
  string: ['string'],
  text: ['string'],
  integer: ['integer'],
  number: ['number', 'integer'],
  boolean: ['boolean'],
  date: ['date'],
  datetime: ['date', 'string'],
};
const PATTERN_COLUMN_TYPES: readonly ColumnType[] = ['string', 'text', 'datetime'];
const BOOLEAN_OPERATORS: readonly string[] = ['=', '!=', 'in', 'not_in', 'is_null', 'is_not_null'];

function assertKnownTables(def: QueryDefinition, catalog: readonly CatalogTable[]): void {
  const unknown = def.tables.filter((name) => !catalog.some((t) => t.name === name));
  if (unknown.length > 0) {
    throw new HubError(
      'unknown_table',
      400,
      `unknown table${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`,
      { tables: unknown },
    );
  }
}

function assertKnownColumns(def: QueryDefinition, refs: string[], catalog: readonly CatalogTable[]): void {
  const unknown = refs.filter(
    (ref) => !def.tables.includes(splitColumnRef(ref).table) || findCatalogColumn(catalog, ref) === undefined,
  );
  if (unknown.length > 0) {
    throw new HubError(
      'unknown_column',
      400,
      `unknown column${unknown.length > 1 ? 's' : ''} (not a catalog column of the query's tables): ${unknown.join(', ')}`,
      { columns: unknown },
    );
  }
}

function assertParamsUsed(def: QueryDefinition): void {
  const used = def.conditions.flatMap((c, i) =>
    'param' in c ? [{ name: c.param, at: `conditions[${i}].param` }] : [],
  );
  const problems = [
    ...used
      .filter((u) => !Object.hasOwn(def.params, u.name))
      .map((u) => `${u.at}: parameter ${u.name} is not defined in params`),
    ...Object.keys(def.params)
      .filter((name) => !used.some((u) => u.name === name))
      .map((name) => `params.${name}: parameter ${name} is not used by any condition`),
  ];
  if (problems.length > 0) throw new HubError('invalid_parameter', 400, problems.join('; '), { problems });
}

function listValues(condition: QueryCondition): Array<{ at: string; value: unknown }> {
  if (!('value' in condition)) return [];
  if (Array.isArray(condition.value))
    return condition.value.map((value, j) => ({ at: `.value[${j}]`, value }));
  return [{ at: '.value', value: condition.value }];
}

/** A pattern ending in a lone escape character is an error on PostgreSQL and SQL Server. */
export function findLikePatternProblem(pattern: string): string | null {
  const trailing = /\\*$/.exec(pattern)?.[0].length ?? 0;
  return trailing % 2 === 1
    ? 'a like pattern must not end with a lone \\ (write \\\\ for a backslash)'
    : null;
}

function findOperatorProblem(condition: QueryCondition, type: ColumnType): string | null {
  const pattern = condition.op === 'like' || condition.op === 'starts_with';
  if (pattern && !PATTERN_COLUMN_TYPES.includes(type))
    return `${condition.op} works on text columns; ${condition.column} is ${type}`;
  if (type === 'boolean' && !BOOLEAN_OPERATORS.includes(condition.op)) {
    return `${condition.op} does not apply to the boolean column ${condition.column}`;
  }
  return null;
}

/** Literal values must fit the column's type; parameters must have a type that does. */
function assertConditionTypes(def: QueryDefinition, catalog: readonly CatalogTable[]): void {
  const requestProblems: string[] = [];
  const paramProblems: string[] = [];
  def.conditions.forEach((condition, i) => {
    const type = findCatalogColumn(catalog, condition.column)?.type;
    if (type === undefined) return;
    const at = `conditions[${i}]`;
    const operatorProblem = findOperatorProblem(condition, type);
    if (operatorProblem !== null) {
      requestProblems.push(`${at}.op: ${operatorProblem}`);
      return;
    }
    const pattern = condition.op === 'like' || condition.op === 'starts_with';
    const valueType: ColumnType = pattern ? 'string' : type;
    for (const { at: where, value } of listValues(condition)) {
      const problem =
        findValueProblem(valueType, value) ??
        (condition.op === 'like' ? findLikePatternProblem(String(value)) : null);
      if (problem !== null)
        requestProblems.push(`${at}${where}: ${problem} (${condition.column} is ${type})`);
    }
    if ('param' in condition) {
      const paramType = def.params[condition.param]?.type;
      const accepted = pattern ? ['string'] : PARAM_TYPES_FOR[type];
      if (paramType !== undefined && !accepted.includes(paramType)) {
        paramProblems.push(
          `${at}.param: parameter ${condition.param} is ${paramType}, but ${condition.column} (${type}) needs ${accepted.join(' or ')}`,
        );
      }
    }
  });
  if (requestProblems.length > 0)
    throw new HubError('invalid_request', 400, requestProblems.join('; '), { problems: requestProblems });
  if (paramProblems.length > 0)
    throw new HubError('invalid_parameter', 400, paramProblems.join('; '), { problems: paramProblems });
}

/** Stored definitions already checked, by the catalog read they were checked against. */
const checkedReads = new WeakMap<readonly CatalogTable[], WeakMap<QueryDefinition, QueryReads>>();

/**
 * Checks a parsed definition against the catalog and returns every table and column it reads
 * (listed, joined, selected, filtered or sorted on). Only names that passed here ever reach SQL
 * as identifiers. A stored definition is frozen and shared by every run of its query, and the
 * catalog cache gives a new array when it reads the catalog again: the pair is checked once.
 */
export function validateQueryDefinition(def: QueryDefinition, catalog: readonly CatalogTable[]): QueryReads {
  if (!Object.isFrozen(def)) return checkQueryDefinition(def, catalog);
  let byDefinition = checkedReads.get(catalog);
  if (byDefinition === undefined) checkedReads.set(catalog, (byDefinition = new WeakMap()));
  let reads = byDefinition.get(def);
  if (reads === undefined) byDefinition.set(def, (reads = checkQueryDefinition(def, catalog)));
  return reads;
}

function checkQueryDefinition(def: QueryDefinition, catalog: readonly CatalogTable[]): QueryReads {
  assertKnownTables(def, catalog);
  assertKnownColumns(def, listNamedColumns(def), catalog);
  assertParamsUsed(def);
  assertConditionTypes(def, catalog);
  return listQueryReads(def, catalog);
}
