import assert from 'node:assert/strict';
import { buildConnectorDefinition, type ConnectorDefinition } from '../../../connectors/definition.ts';
import { compileRowMapper } from '../../../connectors/mapping/compile-row-mapper.ts';
import { buildNationalId, type NationalIdRule } from '../../../warehouse/core/national-id.ts';

const rule: NationalIdRule = { length: 10, checkDigit: 'luhn' };
const ID_A = buildNationalId('990123456', rule);
const ID_B = buildNationalId('200000001', rule);

/** A check digit that is not the right one. */
function withWrongCheckDigit(id: string): string {
  return id.slice(0, -1) + String((Number(id.at(-1)) + 1) % 10);
}

function definition(
  overrides: Record<string, unknown> = {},
  source: Record<string, unknown> = {},
): ConnectorDefinition {
  return buildConnectorDefinition(
    {
      name: 'cspd-people',
      entity: 'CSPD',
      source: { kind: 'csv', path: 'people.csv', ...source },
      target: { table: 'cspd_people' },
      columns: {
        national_id: { from: 'NID', required: true },
        full_name: { from: 'NAME_AR', length: 60 },
        gender: { codes: { '1': 'M', '2': 'F' } },
        birth_date: { from: 'DOB', type: 'date', format: 'DD/MM/YYYY' },
        household_size: { type: 'integer' },
      },
      ...overrides,
    },
    'tests/cspd-people.yaml',
  );
}

const goodRecord = {
  NID: ` ${ID_A} `,
  NAME_AR: 'فاطمة أحمد',
  gender: '2',
  DOB: '17/05/1990',
  household_size: '5',
  ignored_field: 'not mapped',
};

describe('compileRowMapper', () => {
  describe('map', () => {
    const mapper = compileRowMapper(definition(), rule);

    it('lists the target columns in definition order', () => {
      assert.deepEqual(mapper.columns, [
        'national_id',
        'full_name',
        'gender',
        'birth_date',
        'household_size',
      ]);
    });

    it('returns converted values in column order, reading each from its source field', () => {
      assert.deepEqual(mapper.map(goodRecord), {
        ok: true,
        values: [ID_A, 'فاطمة أحمد', 'F', '1990-05-17', 5],
      });
    });

    it('gives null for optional fields the record lacks', () => {
      assert.deepEqual(mapper.map({ NID: ID_B }), { ok: true, values: [ID_B, null, null, null, null] });
    });

    it('rejects the row with the first bad value, naming its column', () => {
      assert.deepEqual(mapper.map({ ...goodRecord, gender: '9' }), {
        ok: false,
        reason: 'gender: "9" is not in the code list',
      });
      assert.deepEqual(mapper.map({ ...goodRecord, DOB: '31/02/1990' }), {
        ok: false,
        reason: 'birth_date: "31/02/1990" is not a valid date (DD/MM/YYYY)',
      });
      assert.deepEqual(mapper.map({ ...goodRecord, household_size: 'five' }), {
        ok: false,
        reason: 'household_size: "five" is not an integer',
      });
    });

    it('rejects a missing national ID', () => {
      assert.deepEqual(mapper.map({ ...goodRecord, NID: '   ' }), {
        ok: false,
        reason: 'national_id: required value is missing',
      });
    });

    it('rejects a missing national ID even when the column is not marked required', () => {
      const optional = compileRowMapper(definition({ columns: { national_id: {}, full_name: {} } }), rule);
      assert.deepEqual(optional.map({ full_name: 'x' }), {
        ok: false,
        reason: 'national_id: required value is missing',
      });
    });

    it('rejects a wrong check digit, naming the column', () => {
      assert.deepEqual(mapper.map({ ...goodRecord, NID: withWrongCheckDigit(ID_A) }), {
        ok: false,
        reason: 'national_id: national ID check digit is wrong',
      });
    });

    it('rejects a national ID of the wrong length, naming the column', () => {
      assert.deepEqual(mapper.map({ ...goodRecord, NID: ID_A.slice(0, 9) }), {
        ok: false,
        reason: 'national_id: national ID must have 10 digits, got 9',
      });
      assert.deepEqual(mapper.map({ ...goodRecord, NID: `${ID_A}0` }), {
        ok: false,
        reason: 'national_id: national ID must have 10 digits, got 11',
      });
    });

    it('rejects a national ID with non-digits, naming the column', () => {
      assert.deepEqual(mapper.map({ ...goodRecord, NID: `${ID_A.slice(0, 9)}X` }), {
        ok: false,
        reason: 'national_id: national ID must contain digits only',
      });
      // Arabic-Indic digits are not the digits of a national ID.
      assert.deepEqual(mapper.map({ ...goodRecord, NID: '١٢٣٤٥٦٧٨٩٠' }), {
        ok: false,
        reason: 'national_id: national ID must contain digits only',
      });
    });

    it('names a national ID column that is not called national_id', () => {
      const def = definition({
        target: { table: 'cspd_people', national_id: 'nid' },
        columns: { nid: { from: 'NID' }, full_name: {} },
      });
      const renamed = compileRowMapper(def, rule);
      assert.deepEqual(renamed.map({ NID: withWrongCheckDigit(ID_A) }), {
        ok: false,
        reason: 'nid: national ID check digit is wrong',
      });
    });

    it('follows the rule it is given', () => {
      const noCheck = compileRowMapper(definition(), { length: 10, checkDigit: 'none' });
      assert.equal(noCheck.map({ ...goodRecord, NID: withWrongCheckDigit(ID_A) }).ok, true);
      assert.deepEqual(compileRowMapper(definition(), { length: 12, checkDigit: 'none' }).map(goodRecord), {
        ok: false,
        reason: 'national_id: national ID must have 12 digits, got 10',
      });
    });
  });

  describe('mapKey', () => {
    it('converts only the key, so a record with bad other fields can still be deleted', () => {
      const mapper = compileRowMapper(definition(), rule);
      const bad = { NID: ` ${ID_A}`, gender: 'X', DOB: 'not a date', household_size: 'many' };
      assert.equal(mapper.map(bad).ok, false);
      assert.deepEqual(mapper.mapKey(bad), [ID_A]);
    });

    it('returns null when a key field is missing or cannot be converted', () => {
      const def = definition({
        target: { table: 'cspd_people', key: ['national_id', 'household_size'] },
      });
      const mapper = compileRowMapper(def, rule);
      assert.deepEqual(mapper.mapKey({ NID: ID_A, household_size: ' 3 ' }), [ID_A, 3]);
      assert.equal(mapper.mapKey({ NID: ID_A }), null);
      assert.equal(mapper.mapKey({ NID: '', household_size: '3' }), null);
      assert.equal(mapper.mapKey({ NID: ID_A, household_size: 'three' }), null);
    });
  });

  describe('sourceKey', () => {
    it('is the source value of a single key', () => {
      const mapper = compileRowMapper(definition(), rule);
      assert.equal(mapper.sourceKey({ NID: ID_A }), ID_A);
      assert.equal(mapper.sourceKey({}), '');
    });

    it('joins composite keys with | in key order, from source field names, untrimmed', () => {
      const def = definition({
        target: { table: 'cspd_people', key: ['birth_date', 'national_id'] },
      });
      const mapper = compileRowMapper(def, rule);
      assert.deepEqual(def.key, ['birth_date', 'national_id']);
      assert.equal(mapper.sourceKey({ NID: ` ${ID_B}`, DOB: '01/02/2003' }), `01/02/2003| ${ID_B}`);
      assert.equal(mapper.sourceKey({ NID: 1234567890, DOB: null }), '|1234567890');
      assert.equal(
        mapper.sourceKey({ NID: ID_B, DOB: new Date(Date.UTC(2003, 1, 1)) }),
        `2003-02-01T00:00:00.000Z|${ID_B}`,
      );
    });
  });

  describe('isDeletion', () => {
    it('is false for every record without a deleted_flag', () => {
      const mapper = compileRowMapper(definition(), rule);
      assert.equal(mapper.isDeletion({ ...goodRecord, is_deleted: '1' }), false);
    });

    it('compares the flag column, trimmed, with the flag value as text', () => {
      const def = definition({}, { deleted_flag: { column: 'STATUS', value: 'D' } });
      const mapper = compileRowMapper(def, rule);
      assert.equal(mapper.isDeletion({ ...goodRecord, STATUS: 'D' }), true);
      assert.equal(mapper.isDeletion({ ...goodRecord, STATUS: ' D ' }), true);
      assert.equal(mapper.isDeletion({ ...goodRecord, STATUS: 'd' }), false);
      assert.equal(mapper.isDeletion({ ...goodRecord, STATUS: 'A' }), false);
      assert.equal(mapper.isDeletion({ ...goodRecord, STATUS: null }), false);
      assert.equal(mapper.isDeletion(goodRecord), false);
    });

    it('matches numeric and boolean flag values against driver values', () => {
      const numeric = compileRowMapper(
        definition({}, { deleted_flag: { column: 'deleted', value: 1 } }),
        rule,
      );
      assert.equal(numeric.isDeletion({ deleted: 1 }), true);
      assert.equal(numeric.isDeletion({ deleted: '1' }), true);
      assert.equal(numeric.isDeletion({ deleted: 0 }), false);
      const boolean = compileRowMapper(
        definition({}, { deleted_flag: { column: 'deleted', value: true } }),
        rule,
      );
      assert.equal(boolean.isDeletion({ deleted: true }), true);
      assert.equal(boolean.isDeletion({ deleted: 'true' }), true);
      assert.equal(boolean.isDeletion({ deleted: false }), false);
    });
  });

  describe('cursorOf', () => {
    it('is null without a cursor', () => {
      assert.equal(
        compileRowMapper(definition(), rule).cursorOf({ ...goodRecord, updated_at: '2024-01-01' }),
        null,
      );
    });

    it('is the cursor field as text, or null when it is missing', () => {
      const mapper = compileRowMapper(definition({}, { cursor: 'updated_at' }), rule);
      assert.equal(mapper.cursorOf({ updated_at: '2024-01-01 10:00:00' }), '2024-01-01 10:00:00');
      assert.equal(mapper.cursorOf({ updated_at: 1042 }), '1042');
      assert.equal(
        mapper.cursorOf({ updated_at: new Date(Date.UTC(2024, 0, 1, 10)) }),
        '2024-01-01T10:00:00.000Z',
      );
      assert.equal(mapper.cursorOf({ updated_at: null }), null);
      assert.equal(mapper.cursorOf({ updated_at: '' }), null);
      assert.equal(mapper.cursorOf({}), null);
    });
  });
});
