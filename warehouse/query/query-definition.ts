import { z } from 'zod';
import type { ColumnType } from '../core/column-types.ts';
import { HubError } from '../core/errors.ts';
import { IDENTIFIER, MAX_IDENTIFIER_LENGTH } from '../core/identifiers.ts';

export const OPERATORS = [
  '=',
  '!=',
  '<',
  '<=',
  '>',
  '>=',
  'in',
  'not_in',
  'like',
  'starts_with',
  'between',
  'is_null',
  'is_not_null',
] as const;
export type Operator = (typeof OPERATORS)[number];
export type SingleValueOperator = '=' | '!=' | '<' | '<=' | '>' | '>=' | 'like' | 'starts_with';
export type ListOperator = 'in' | 'not_in';
export type NullOperator = 'is_null' | 'is_not_null';

export const PARAM_TYPES = ['string', 'integer', 'number', 'date', 'boolean'] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

export type ScalarValue = string | number | boolean;

export type QueryCondition =
  | { column: string; op: SingleValueOperator; value: ScalarValue }
  | { column: string; op: SingleValueOperator; param: string }
  | { column: string; op: ListOperator; value: ScalarValue[] }
  | { column: string; op: 'between'; value: [ScalarValue, ScalarValue] }
  | { column: string; op: NullOperator };

/** SQL Server accepts at most 2100 parameters per statement; the conditions may bind this many in all. */
export const MAX_LIST_VALUES = 1000;
export const MAX_TABLES = 8;
export const MAX_LIMIT = 10000;

const identifierPart = `[a-z][a-z0-9_]{0,${MAX_IDENTIFIER_LENGTH - 1}}`;
const COLUMN_REF = new RegExp(`^${identifierPart}\\.${identifierPart}$`);
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME = /^(\d{4}-\d{2}-\d{2})(?: (\d{2}):(\d{2}):(\d{2}))?$/;

const identifier = z
  .string()
  .max(MAX_IDENTIFIER_LENGTH)
  .regex(IDENTIFIER, `must match ${IDENTIFIER.source} (lower-case letters, digits and _)`);
const columnRef = z
  .string()
  .regex(COLUMN_REF, 'must be "table.column" with lower-case letters, digits and _');

function isRealDate(text: string): boolean {
  const m = DATE.exec(text);
  if (m === null) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function isWarehouseDateTime(text: string): boolean {
  const m = DATETIME.exec(text);
  if (m === null || !isRealDate(m[1] ?? '')) return false;
  return m[2] === undefined || (Number(m[2]) < 24 && Number(m[3]) < 60 && Number(m[4]) < 60);
}

/**
 * Why a value cannot stand for a parameter or column of this type, or null when it can.
 * Dates are the warehouse's text form, so they compare the same way in every dialect.
 */
export function findValueProblem(type: ParamType | ColumnType, value: unknown): string | null {
  switch (type) {
    case 'string':
    case 'text':
      if (typeof value !== 'string') return 'must be a string';
      // PostgreSQL refuses text holding U+0000; every dialect gets the same 400 instead.
      return value.includes('\u0000') ? 'must not contain a NUL character' : null;
    case 'integer':
      return Number.isSafeInteger(value) ? null : 'must be an integer';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? null : 'must be a number';
    case 'boolean':
      return typeof value === 'boolean' ? null : 'must be true or false';
    case 'date':
      return typeof value === 'string' && isRealDate(value) ? null : 'must be a real date written YYYY-MM-DD';
    case 'datetime':
      return typeof value === 'string' && isWarehouseDateTime(value)
        ? null
        : 'must be written YYYY-MM-DD or YYYY-MM-DD HH:mm:ss';
  }
}

const isOperator = (op: string): op is Operator => (OPERATORS as readonly string[]).includes(op);
const isScalar = (v: unknown): v is ScalarValue =>
  typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));

const rawCondition = z
  .object({
    column: columnRef,
    op: z.string(),
    value: z.unknown().optional(),
    param: identifier.optional(),
  })
  .strict();

type RawCondition = z.infer<typeof rawCondition>;
type Issue = { path: string[]; message: string; operator?: string };

/** Checks that each operator gets the operands it takes and builds the typed condition. */
function buildCondition(c: RawCondition): QueryCondition | Issue {
  const { column, op, value, param } = c;
  if (!isOperator(op)) {
    return {
      path: ['op'],
      message: `unknown operator ${JSON.stringify(op)} (use one of ${OPERATORS.join(' ')})`,
      operator: op,
    };
  }
  const hasValue = value !== undefined;
  switch (op) {
    case 'is_null':
    case 'is_not_null':
      if (hasValue || param !== undefined)
        return { path: [hasValue ? 'value' : 'param'], message: `${op} takes no value or param` };
      return { column, op };
    case 'in':
    case 'not_in':
      if (param !== undefined) return { path: ['param'], message: `${op} takes a list value, not a param` };
      if (
        !Array.isArray(value) ||
        value.length === 0 ||
        value.length > MAX_LIST_VALUES ||
        !value.every(isScalar)
      ) {
        return {
          path: ['value'],
          message: `${op} needs a list of 1 to ${MAX_LIST_VALUES} strings, numbers or booleans`,
        };
      }
      return { column, op, value };
    case 'between': {
      if (param !== undefined)
        return { path: ['param'], message: 'between takes a value [low, high], not a param' };
      if (!Array.isArray(value) || value.length !== 2)
        return { path: ['value'], message: 'between needs a value [low, high]' };
      const low: unknown = value[0];
      const high: unknown = value[1];
      if (!isScalar(low) || !isScalar(high))
        return { path: ['value'], message: 'between needs two strings or numbers' };
      return { column, op, value: [low, high] };
    }
    default:
      if (hasValue === (param !== undefined))
        return { path: ['value'], message: `${op} needs exactly one of value or param` };
      if (param !== undefined) return { column, op, param };
      if (!isScalar(value))
        return { path: ['value'], message: `${op} needs a string, number or boolean value` };
      return { column, op, value };
  }
}

const condition = rawCondition.transform((c, ctx): QueryCondition => {
  const built = buildCondition(c);
  if (!('message' in built)) return built;
  ctx.addIssue({
    code: 'custom',
    path: built.path,
    message: built.message,
    ...(built.operator === undefined ? {} : { params: { operator: built.operator } }),
  });
  return z.NEVER;
});

export interface ParamDefinition {
  type: ParamType;
  required: boolean;
  default?: ScalarValue;
}

const paramDefinition = z
  .object({
    type: z.enum(PARAM_TYPES),
    required: z.boolean().default(false),
    default: z.unknown().optional(),
  })
  .strict()
  .transform((p, ctx): ParamDefinition => {
    const { type, required } = p;
    if (p.default === undefined) return { type, required };
    const problem = findValueProblem(type, p.default);
    if (problem !== null || !isScalar(p.default)) {
      ctx.addIssue({
        code: 'custom',
        path: ['default'],
        message: `${problem ?? 'must be a plain value'} (type ${type})`,
      });
      return z.NEVER;
    }
    return { type, required, default: p.default };
  });

const unique = (items: string[]) => new Set(items).size === items.length;

const querySchema = z
  .object({
    name: z
      .string()
      .max(64)
      .regex(/^[a-z][a-z0-9-]*$/, 'must be lower-case letters, digits and -, starting with a letter'),
    entity: z
      .string()
      .max(16)
      .regex(/^[A-Z][A-Z0-9_]*$/, 'must be an upper-case entity code such as NAF'),
    description: z.string().max(2000).default(''),
    tables: z.array(identifier).min(1).max(MAX_TABLES).refine(unique, 'must not repeat a table'),
    join: z.enum(['inner', 'left']).default('inner'),
    columns: z.array(columnRef).min(1).max(200).refine(unique, 'must not repeat a column'),
    conditions: z.array(condition).max(100).default([]),
    params: z.record(identifier, paramDefinition).default({}),
    limit: z.number().int().min(1).max(MAX_LIMIT).default(100),
    order_by: z
      .array(z.object({ column: columnRef, direction: z.enum(['asc', 'desc']).default('asc') }).strict())
      .max(20)
      .optional(),
  })
  .strict()
  .superRefine((def, ctx) => {
    const listed = def.conditions.reduce(
      (n, c) => n + ('value' in c && Array.isArray(c.value) ? c.value.length : 1),
      0,
    );
    if (listed > MAX_LIST_VALUES) {
      ctx.addIssue({
        code: 'custom',
        path: ['conditions'],
        message: `at most ${MAX_LIST_VALUES} values in all (${listed} given)`,
      });
    }
  });

export type QueryDefinition = z.output<typeof querySchema>;
export type QueryDefinitionInput = z.input<typeof querySchema>;

function formatIssuePath(issuePath: readonly PropertyKey[]): string {
  return (
    issuePath
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
      .replace(/^\./, '') || '(root)'
  );
}

/** Validates a saved query definition's shape; every error names the field path. Catalog checks come later. */
export function parseQueryDefinition(raw: unknown): QueryDefinition {
  const parsed = querySchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((i) => `${formatIssuePath(i.path)}: ${i.message}`);
  const message = `invalid query definition: ${fields.join('; ')}`;
  const operators = parsed.error.issues.flatMap((i) => {
    const operator: unknown = i.code === 'custom' ? i.params?.operator : undefined;
    return typeof operator === 'string' ? [operator] : [];
  });
  if (operators.length > 0) throw new HubError('invalid_operator', 400, message, { fields, operators });
  throw new HubError('invalid_request', 400, message, { fields });
}
