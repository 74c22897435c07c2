import assert from 'node:assert/strict';
import { HubError } from '../../../warehouse/core/errors.ts';
import { bindParams } from '../../../warehouse/query/bind-params.ts';
import { parseQueryDefinition, type QueryDefinition } from '../../../warehouse/query/query-definition.ts';
import { isHubError } from '../../support/hub-errors.ts';

const column = 't.c';
const def: QueryDefinition = parseQueryDefinition({
  name: 'params-of-every-type',
  entity: 'NAF',
  tables: ['t'],
  columns: [column],
  conditions: ['born_before', 'region', 'min_size', 'min_score', 'enrolled', 'max_year'].map((param) => ({
    column,
    op: '=',
    param,
  })),
  params: {
    born_before: { type: 'date', required: true },
    region: { type: 'string', default: 'عمان' },
    min_size: { type: 'integer' },
    min_score: { type: 'number' },
    enrolled: { type: 'boolean' },
    max_year: { type: 'integer', required: true, default: 2020 },
  },
});

function assertInvalidParameter(supplied: unknown, ...names: string[]): void {
  assert.throws(
    () => bindParams(def, supplied),
    (err: unknown) => {
      assert.ok(err instanceof HubError, String(err));
      assert.equal(err.code, 'invalid_parameter', err.message);
      assert.equal(err.status, 400);
      for (const name of names)
        assert.ok(
          err.message.includes(`params.${name}:`),
          `${JSON.stringify(err.message)} should name ${name}`,
        );
      assert.deepEqual(err.details?.parameters, names);
      return true;
    },
  );
}

describe('bindParams', () => {
  it('binds given values and applies defaults; optional parameters without a value stay absent', () => {
    assert.deepEqual(bindParams(def, { born_before: '1980-12-31', min_size: 4 }), {
      born_before: '1980-12-31',
      region: 'عمان',
      min_size: 4,
      max_year: 2020,
    });
  });

  it('takes every type in its JSON form', () => {
    const supplied = {
      born_before: '2000-02-29',
      region: 'إربد',
      min_size: -3,
      min_score: 0.25,
      enrolled: false,
      max_year: 1999,
    };
    assert.deepEqual(bindParams(def, supplied), supplied);
  });

  it('treats null as not given: the default applies', () => {
    assert.deepEqual(bindParams(def, { born_before: '1980-01-01', region: null }), {
      born_before: '1980-01-01',
      region: 'عمان',
      max_year: 2020,
    });
  });

  it('a missing required parameter is named', () => assertInvalidParameter({}, 'born_before'));
  it('no params at all (undefined) is the same as {}', () =>
    assertInvalidParameter(undefined, 'born_before'));
  it('a required parameter given as null is missing', () =>
    assertInvalidParameter({ born_before: null }, 'born_before'));
  it('an unknown parameter is named', () =>
    assertInvalidParameter({ born_before: '1980-01-01', born_after: '1970-01-01' }, 'born_after'));
  it('__proto__ is an unknown parameter, not a prototype', () =>
    assertInvalidParameter(JSON.parse('{"born_before": "1980-01-01", "__proto__": {"x": 1}}'), '__proto__'));

  describe('wrong types are named', () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['a date in another format', { born_before: '31/12/1980' }, 'born_before'],
      ['a date without leading zeros', { born_before: '1980-1-3' }, 'born_before'],
      ['a date that does not exist', { born_before: '2023-02-29' }, 'born_before'],
      ['a date with a time', { born_before: '1980-01-01T00:00:00Z' }, 'born_before'],
      ['a date given as a number', { born_before: 19800101 }, 'born_before'],
      ['an integer given as text', { born_before: '1980-01-01', min_size: '4' }, 'min_size'],
      ['a fractional integer', { born_before: '1980-01-01', min_size: 4.5 }, 'min_size'],
      ['a number given as text', { born_before: '1980-01-01', min_score: '0.5' }, 'min_score'],
      ['a boolean given as text', { born_before: '1980-01-01', enrolled: 'true' }, 'enrolled'],
      ['a boolean given as 1', { born_before: '1980-01-01', enrolled: 1 }, 'enrolled'],
      ['a string given as a number', { born_before: '1980-01-01', region: 5 }, 'region'],
      ['a string given as a list', { born_before: '1980-01-01', region: ['a'] }, 'region'],
    ];
    for (const [what, supplied, name] of cases)
      it(`${what} → ${name}`, () => assertInvalidParameter(supplied, name));
  });

  it('names every bad parameter in one error', () => {
    assertInvalidParameter({ min_size: 'many', extra: 1 }, 'extra', 'born_before', 'min_size');
  });

  it('params that are not an object are refused', () => {
    for (const supplied of [['1980-01-01'], 'born_before=1980-01-01', 7]) {
      assert.throws(() => bindParams(def, supplied), isHubError('invalid_parameter', undefined, /^params:/));
    }
  });
});
