import type { ColumnMapping } from '../definition.ts';
import { toSourceText } from '../../warehouse/core/source-text.ts';
import { compileDateFormat, formatIsoDate, formatIsoDateTime } from './date-format.ts';

/** A warehouse value, or the reason the source value cannot become one. */
export type Converted = { ok: true; value: string | number | boolean | null } | { ok: false; reason: string };

export type ValueConverter = (raw: unknown) => Converted;

/** Why a source value cannot become a warehouse value. */
export class Rejection {
  constructor(readonly reason: string) {}
}

type Scalar = string | number | boolean | null;

/** The per-row form: the value itself or a Rejection, so a valid value costs no wrapper object. */
export type ValueMapper = (raw: unknown) => Scalar | Rejection;

const DEFAULT_TRUE = ['1', 'true', 't', 'yes', 'y'];
const DEFAULT_FALSE = ['0', 'false', 'f', 'no', 'n'];
const INTEGER = /^[-+]?\d+$/;
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

const fail = (reason: string): Rejection => new Rejection(reason);
const ok = (value: Scalar): Scalar => value;

function toText(raw: unknown, trim: boolean): string | null {
  const text = toSourceText(raw);
  const result = trim ? text.trim() : text;
  return result === '' ? null : result;
}

export function compileValueConverter(column: string, mapping: ColumnMapping): ValueConverter {
  const map = compileValueMapper(column, mapping);
  return (raw) => {
    const value = map(raw);
    return value instanceof Rejection ? { ok: false, reason: value.reason } : { ok: true, value };
  };
}

/** Builds the conversion of one column once, so the per-row work is a few comparisons. */
export function compileValueMapper(column: string, mapping: ColumnMapping): ValueMapper {
  const describe = (text: string, what: string) => fail(`${column}: ${JSON.stringify(text)} ${what}`);
  const typed = compileTypedConverter(mapping, describe);
  const codes = mapping.codes;
  const fallback = mapping.default ?? null;
  return (raw) => {
    const text = toText(raw, mapping.trim);
    if (text === null) {
      if (fallback !== null) return ok(fallback);
      return mapping.required ? fail(`${column}: required value is missing`) : ok(null);
    }
    if (codes !== undefined) {
      // Own keys only: a source value such as "constructor" is not in the code list.
      const coded = Object.hasOwn(codes, text) ? codes[text] : undefined;
      if (coded === undefined) return describe(text, 'is not in the code list');
      // The coded value, not the source one, is what gets typed (1 → 10 must not stay 1).
      return typed(String(coded), coded);
    }
    return typed(text, raw);
  };
}

function compileTypedConverter(
  mapping: ColumnMapping,
  describe: (text: string, what: string) => Rejection,
): (text: string, raw: unknown) => Scalar | Rejection {
  switch (mapping.type) {
    case 'string':
    case 'text': {
      const max = mapping.length ?? (mapping.type === 'string' ? 255 : Infinity);
      return (text) =>
        text.length > max ? describe(text.slice(0, 40), `is longer than ${max} characters`) : ok(text);
    }
    case 'integer':
      return (text, raw) => {
        if (typeof raw === 'number' && Number.isSafeInteger(raw)) return ok(raw);
        if (!INTEGER.test(text)) return describe(text, 'is not an integer');
        const n = Number(text);
        return Number.isSafeInteger(n) ? ok(n) : describe(text, 'is out of range');
      };
    case 'number':
      return (text, raw) => {
        if (typeof raw === 'number' && Number.isFinite(raw)) return ok(raw);
        return NUMBER.test(text) ? ok(Number(text)) : describe(text, 'is not a number');
      };
    case 'boolean': {
      const truthy = (mapping.true_values ?? DEFAULT_TRUE).map((v) => v.toLowerCase());
      const falsy = mapping.true_values === undefined ? DEFAULT_FALSE : null;
      return (text, raw) => {
        if (typeof raw === 'boolean') return ok(raw);
        const lower = text.toLowerCase();
        if (truthy.includes(lower)) return ok(true);
        if (falsy === null || falsy.includes(lower)) return ok(false);
        return describe(text, 'is not a boolean');
      };
    }
    case 'date':
    case 'datetime': {
      const parse = compileDateFormat(mapping.format);
      // A driver's Date arrives as ISO text (toText), whatever format the source's text dates have.
      const parseIso = compileDateFormat(undefined);
      const render = mapping.type === 'date' ? formatIsoDate : formatIsoDateTime;
      const expected = mapping.format ?? 'ISO 8601';
      return (text, raw) => {
        const parts = raw instanceof Date ? parseIso(text) : parse(text);
        return parts === null ? describe(text, `is not a valid date (${expected})`) : ok(render(parts));
      };
    }
  }
}
