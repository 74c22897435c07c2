import assert from 'node:assert/strict';
import type { ColumnMapping } from '../../../connectors/definition.ts';
import { compileValueConverter, type Converted } from '../../../connectors/mapping/convert-value.ts';

/** A column mapping as the definition schema leaves it once its defaults are applied. */
function mapping(partial: Partial<ColumnMapping> = {}): ColumnMapping {
  return { type: 'string', required: false, trim: true, ...partial };
}

const convert = (partial: Partial<ColumnMapping>, raw: unknown, column = 'col'): Converted =>
  compileValueConverter(column, mapping(partial))(raw);

const accepted = (value: string | number | boolean | null): Converted => ({ ok: true, value });

describe('compileValueConverter', () => {
  describe('strings', () => {
    it('trims by default and keeps inner spaces', () => {
      assert.deepEqual(convert({}, '  Amman  Governorate \t'), accepted('Amman  Governorate'));
    });

    it('keeps the spaces when trim is false', () => {
      assert.deepEqual(convert({ trim: false }, '  padded '), accepted('  padded '));
    });

    it('turns numbers and booleans into text', () => {
      assert.deepEqual(convert({}, 42), accepted('42'));
      assert.deepEqual(convert({}, 1.5), accepted('1.5'));
      assert.deepEqual(convert({}, false), accepted('false'));
    });

    it('rejects a value longer than length, naming the column and the limit', () => {
      assert.deepEqual(convert({ length: 5 }, 'abcde'), accepted('abcde'));
      const result = convert({ length: 5 }, 'abcdef', 'full_name');
      assert.deepEqual(result, { ok: false, reason: 'full_name: "abcdef" is longer than 5 characters' });
    });

    it('measures the length after trimming', () => {
      assert.deepEqual(convert({ length: 3 }, '  abc  '), accepted('abc'));
    });

    it('limits string to 255 characters by default, text not at all', () => {
      assert.deepEqual(convert({}, 'x'.repeat(255)), accepted('x'.repeat(255)));
      const long = convert({}, 'x'.repeat(256));
      assert.equal(long.ok, false);
      assert.match((long as { reason: string }).reason, /is longer than 255 characters$/);
      // The message quotes only the start of a long value.
      assert.ok((long as { reason: string }).reason.includes(`"${'x'.repeat(40)}"`));
      assert.ok(!(long as { reason: string }).reason.includes('x'.repeat(41)));
      assert.deepEqual(convert({ type: 'text' }, 'y'.repeat(10000)), accepted('y'.repeat(10000)));
    });
  });

  describe('missing values', () => {
    it('turns null, undefined, empty and blank text into null', () => {
      for (const raw of [null, undefined, '', '   ', '\t\n'])
        assert.deepEqual(convert({}, raw), accepted(null));
    });

    it('keeps blank text when trim is false, but empty text is still null', () => {
      assert.deepEqual(convert({ trim: false }, '   '), accepted('   '));
      assert.deepEqual(convert({ trim: false }, ''), accepted(null));
    });

    it('rejects a missing required value, naming the column', () => {
      assert.deepEqual(convert({ required: true }, '  ', 'national_id'), {
        ok: false,
        reason: 'national_id: required value is missing',
      });
      assert.deepEqual(convert({ required: true, type: 'integer' }, null, 'household_size').ok, false);
    });

    it('uses the default for a missing value, even when required', () => {
      assert.deepEqual(convert({ default: 'unknown' }, ''), accepted('unknown'));
      assert.deepEqual(convert({ default: 0, type: 'integer', required: true }, null), accepted(0));
      assert.deepEqual(convert({ default: false, type: 'boolean' }, undefined), accepted(false));
    });

    it('does not use the default for a present value', () => {
      assert.deepEqual(convert({ default: 'unknown' }, 'Irbid'), accepted('Irbid'));
    });

    it('treats an explicit null default as no default', () => {
      assert.deepEqual(convert({ default: null, required: true }, '').ok, false);
      assert.deepEqual(convert({ default: null }, ''), accepted(null));
    });
  });

  describe('codes', () => {
    const gender = { codes: { '1': 'M', '2': 'F' } };

    it('maps source codes to warehouse values', () => {
      assert.deepEqual(convert(gender, '1'), accepted('M'));
      assert.deepEqual(convert(gender, ' 2 '), accepted('F'));
    });

    it('maps codes given as JS numbers (as SQL drivers return them)', () => {
      assert.deepEqual(convert(gender, 1), accepted('M'));
      assert.deepEqual(convert(gender, 2), accepted('F'));
    });

    it('rejects an unknown code, naming the column and the value', () => {
      assert.deepEqual(convert(gender, '3', 'gender'), {
        ok: false,
        reason: 'gender: "3" is not in the code list',
      });
      assert.deepEqual(convert(gender, 'm', 'gender'), {
        ok: false,
        reason: 'gender: "m" is not in the code list',
      });
    });

    it('does not take inherited object properties for codes', () => {
      for (const raw of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
        assert.deepEqual(convert(gender, raw, 'gender'), {
          ok: false,
          reason: `gender: ${JSON.stringify(raw)} is not in the code list`,
        });
      }
    });

    it('leaves missing values to required/default, not to the code list', () => {
      assert.deepEqual(convert(gender, ''), accepted(null));
      assert.deepEqual(convert({ ...gender, required: true }, '', 'gender').ok, false);
    });

    it('types the coded value, not the source value', () => {
      const size = { type: 'integer' as const, codes: { '1': 10, '2': 20 } };
      assert.deepEqual(convert(size, '1'), accepted(10));
      assert.deepEqual(convert(size, 1), accepted(10));
      const rate = { type: 'number' as const, codes: { '1': 0.5 } };
      assert.deepEqual(convert(rate, 1), accepted(0.5));
      const flag = { type: 'boolean' as const, codes: { Y: true, N: false } };
      assert.deepEqual(convert(flag, 'Y'), accepted(true));
      assert.deepEqual(convert(flag, 'N'), accepted(false));
    });

    it('checks the coded value against the column type', () => {
      const result = convert({ type: 'integer', codes: { A: 'many' } }, 'A', 'size');
      assert.deepEqual(result, { ok: false, reason: 'size: "many" is not an integer' });
    });
  });

  describe('integers', () => {
    const integer = { type: 'integer' as const };

    it('parses integer text with a sign', () => {
      assert.deepEqual(convert(integer, '42'), accepted(42));
      assert.deepEqual(convert(integer, ' -7 '), accepted(-7));
      assert.deepEqual(convert(integer, '+3'), accepted(3));
      assert.deepEqual(convert(integer, '007'), accepted(7));
    });

    it('takes JS integers as they are', () => {
      assert.deepEqual(convert(integer, 42), accepted(42));
      assert.deepEqual(convert(integer, -9007199254740991), accepted(-9007199254740991));
    });

    it('rejects fractions, exponents, words and thousands separators', () => {
      for (const raw of ['4.5', '1e3', 'twelve', '1,000', '12a', '--1', '٤٢', 4.5]) {
        const result = convert(integer, raw, 'household_size');
        assert.equal(result.ok, false, `accepted ${String(raw)}`);
        assert.match((result as { reason: string }).reason, /^household_size: ".*" is not an integer$/);
      }
    });

    it('rejects integers beyond the safe range', () => {
      assert.deepEqual(convert(integer, '9007199254740993', 'n'), {
        ok: false,
        reason: 'n: "9007199254740993" is out of range',
      });
    });

    it('rejects NaN and Infinity passed as numbers', () => {
      assert.equal(convert(integer, Number.NaN).ok, false);
      assert.equal(convert(integer, Number.POSITIVE_INFINITY).ok, false);
    });
  });

  describe('numbers', () => {
    const number = { type: 'number' as const };

    it('parses decimal and exponent text', () => {
      assert.deepEqual(convert(number, '3.25'), accepted(3.25));
      assert.deepEqual(convert(number, '-0.5'), accepted(-0.5));
      assert.deepEqual(convert(number, '.5'), accepted(0.5));
      assert.deepEqual(convert(number, '5.'), accepted(5));
      assert.deepEqual(convert(number, '1.5e3'), accepted(1500));
      assert.deepEqual(convert(number, '2E-2'), accepted(0.02));
    });

    it('takes finite JS numbers as they are', () => {
      assert.deepEqual(convert(number, 0.1), accepted(0.1));
      assert.deepEqual(convert(number, -12), accepted(-12));
    });

    it('rejects bad text, naming the column', () => {
      for (const raw of ['abc', '1,5', '1.2.3', 'NaN', 'Infinity', '0x10', '.', 'e5', '12 kg']) {
        assert.deepEqual(convert(number, raw, 'income'), {
          ok: false,
          reason: `income: ${JSON.stringify(raw)} is not a number`,
        });
      }
    });

    it('rejects NaN and Infinity passed as numbers', () => {
      assert.deepEqual(convert(number, Number.NaN, 'income'), {
        ok: false,
        reason: 'income: "NaN" is not a number',
      });
      assert.equal(convert(number, Number.NEGATIVE_INFINITY).ok, false);
    });
  });

  describe('booleans', () => {
    const boolean = { type: 'boolean' as const };

    it('knows the default true and false words, in any case', () => {
      for (const raw of ['1', 'true', 'TRUE', 't', 'yes', 'Yes', 'y', ' Y '])
        assert.deepEqual(convert(boolean, raw), accepted(true));
      for (const raw of ['0', 'false', 'False', 'f', 'no', 'NO', 'n'])
        assert.deepEqual(convert(boolean, raw), accepted(false));
    });

    it('takes JS booleans and 0/1 numbers', () => {
      assert.deepEqual(convert(boolean, true), accepted(true));
      assert.deepEqual(convert(boolean, false), accepted(false));
      assert.deepEqual(convert(boolean, 1), accepted(true));
      assert.deepEqual(convert(boolean, 0), accepted(false));
    });

    it('rejects other words with the default lists', () => {
      assert.deepEqual(convert(boolean, 'maybe', 'disabled'), {
        ok: false,
        reason: 'disabled: "maybe" is not a boolean',
      });
      assert.equal(convert(boolean, '2').ok, false);
      assert.equal(convert(boolean, 'نعم').ok, false);
    });

    it('with true_values, those are true and anything else is false', () => {
      const flagged = { type: 'boolean' as const, true_values: ['Y'] };
      assert.deepEqual(convert(flagged, 'Y'), accepted(true));
      assert.deepEqual(convert(flagged, 'y'), accepted(true));
      assert.deepEqual(convert(flagged, 'N'), accepted(false));
      assert.deepEqual(convert(flagged, 'yes'), accepted(false));
      assert.deepEqual(convert(flagged, '1'), accepted(false));
      assert.deepEqual(convert(flagged, 'anything'), accepted(false));
      assert.deepEqual(convert(flagged, ''), accepted(null));
    });

    it('compares true_values case-insensitively, including Arabic words', () => {
      const flagged = { type: 'boolean' as const, true_values: ['Active', 'نعم'] };
      assert.deepEqual(convert(flagged, 'ACTIVE'), accepted(true));
      assert.deepEqual(convert(flagged, 'نعم'), accepted(true));
      assert.deepEqual(convert(flagged, 'لا'), accepted(false));
    });
  });

  describe('dates', () => {
    it('converts a formatted date to ISO', () => {
      assert.deepEqual(convert({ type: 'date', format: 'DD/MM/YYYY' }, '17/05/1990'), accepted('1990-05-17'));
      assert.deepEqual(convert({ type: 'date', format: 'YYYYMMDD' }, '19900517'), accepted('1990-05-17'));
      assert.deepEqual(convert({ type: 'date', format: 'DD/MM/YYYY' }, '1/2/1990'), accepted('1990-02-01'));
    });

    it('reads ISO when no format is given and drops the time of a date column', () => {
      assert.deepEqual(convert({ type: 'date' }, '1990-05-17'), accepted('1990-05-17'));
      assert.deepEqual(convert({ type: 'date' }, '1990-05-17T23:10:00Z'), accepted('1990-05-17'));
    });

    it('rejects an impossible or misformatted date, naming the column and the expected format', () => {
      assert.deepEqual(convert({ type: 'date', format: 'DD/MM/YYYY' }, '31/02/1990', 'birth_date'), {
        ok: false,
        reason: 'birth_date: "31/02/1990" is not a valid date (DD/MM/YYYY)',
      });
      assert.deepEqual(convert({ type: 'date' }, '17/05/1990', 'birth_date'), {
        ok: false,
        reason: 'birth_date: "17/05/1990" is not a valid date (ISO 8601)',
      });
    });

    it('converts a datetime to YYYY-MM-DD HH:mm:ss', () => {
      assert.deepEqual(
        convert({ type: 'datetime', format: 'DD/MM/YYYY HH:mm' }, '17/05/1990 08:05'),
        accepted('1990-05-17 08:05:00'),
      );
      assert.deepEqual(
        convert({ type: 'datetime' }, '1990-05-17T08:05:09.250+03:00'),
        accepted('1990-05-17 08:05:09'),
      );
      assert.deepEqual(convert({ type: 'datetime' }, '1990-05-17'), accepted('1990-05-17 00:00:00'));
    });

    it('rejects hour 24 in a datetime', () => {
      assert.equal(
        convert({ type: 'datetime', format: 'YYYY-MM-DD HH:mm:ss' }, '1990-05-17 24:00:00').ok,
        false,
      );
    });
  });

  describe('JS Date values from SQL drivers', () => {
    const may17 = new Date(Date.UTC(1990, 4, 17));
    const may17AtTime = new Date(Date.UTC(1990, 4, 17, 8, 5, 9, 250));

    it('become ISO dates and datetimes (UTC)', () => {
      assert.deepEqual(convert({ type: 'date' }, may17), accepted('1990-05-17'));
      assert.deepEqual(convert({ type: 'datetime' }, may17AtTime), accepted('1990-05-17 08:05:09'));
      assert.deepEqual(convert({ type: 'datetime' }, may17), accepted('1990-05-17 00:00:00'));
    });

    it('are read whatever text format the column declares', () => {
      assert.deepEqual(convert({ type: 'date', format: 'DD/MM/YYYY' }, may17), accepted('1990-05-17'));
      assert.deepEqual(
        convert({ type: 'datetime', format: 'YYYYMMDD HH:mm' }, may17AtTime),
        accepted('1990-05-17 08:05:09'),
      );
    });

    it('become ISO text in a string column', () => {
      assert.deepEqual(convert({}, may17AtTime), accepted('1990-05-17T08:05:09.250Z'));
    });

    it('count as missing when invalid', () => {
      assert.deepEqual(convert({ type: 'date' }, new Date(Number.NaN)), accepted(null));
      assert.equal(convert({ type: 'date', required: true }, new Date(Number.NaN)).ok, false);
    });
  });

  describe('Arabic text', () => {
    it('is kept byte for byte, without Unicode normalisation', () => {
      // Decomposed alef + madda above, tatweel, harakat, a zero-width non-joiner and
      // Arabic-Indic digits: none of it may be changed.
      const decomposed = 'ا\u0653';
      const composed = decomposed.normalize('NFC');
      assert.notEqual(composed, decomposed);
      const name = `محمّد ${decomposed}حمد\u0640 عبد\u200cالله ١٢٣`;
      const result = convert({ type: 'text' }, `  ${name}  `);
      assert.deepEqual(result, accepted(name));
      assert.ok(result.ok);
      assert.deepEqual(Buffer.from(result.value as string, 'utf8'), Buffer.from(name, 'utf8'));
      assert.deepEqual(convert({ length: 120 }, composed), accepted(composed));
    });

    it('counts length in characters, not bytes', () => {
      const name = 'عبدالله';
      assert.equal(Buffer.byteLength(name), 14);
      assert.deepEqual(convert({ length: 7 }, name), accepted(name));
      assert.equal(convert({ length: 6 }, name).ok, false);
    });

    it('may be a code-list value', () => {
      assert.deepEqual(convert({ codes: { '1': 'ذكر', '2': 'أنثى' } }, 2), accepted('أنثى'));
    });
  });
});
