import assert from 'node:assert/strict';
import { parseQueryDefinition } from '../../../warehouse/query/query-definition.ts';
import { assertHubError } from '../../support/hub-errors.ts';
import { productExample } from '../../support/query-product-example.ts';

const minimal = {
  name: 'q',
  entity: 'NAF',
  tables: ['cspd_personal_info'],
  columns: ['cspd_personal_info.national_id'],
};
const withCondition = (condition: unknown) => ({ ...minimal, conditions: [condition] });

const assertRejected = (raw: unknown, code: string, ...fragments: string[]) =>
  assertHubError(() => parseQueryDefinition(raw), code, ...fragments);

describe('parseQueryDefinition', () => {
  it('parses the PRODUCT.md example as written', () => {
    const def = parseQueryDefinition(productExample);
    assert.deepEqual(def, { ...productExample, join: 'inner' });
  });

  it('applies the defaults: inner join, no conditions, no params, 100 rows, empty description', () => {
    assert.deepEqual(parseQueryDefinition(minimal), {
      ...minimal,
      description: '',
      join: 'inner',
      conditions: [],
      params: {},
      limit: 100,
    });
  });

  it('accepts every operator with the operands it takes, and order_by', () => {
    const def = parseQueryDefinition({
      ...minimal,
      conditions: [
        ...['=', '!=', '<', '<=', '>', '>=', 'like', 'starts_with'].map((op) => ({
          column: 'a.b',
          op,
          value: 'x',
        })),
        { column: 'a.b', op: 'in', value: ['x', 'y'] },
        { column: 'a.b', op: 'not_in', value: [1, 2] },
        { column: 'a.b', op: 'between', value: [1, 9] },
        { column: 'a.b', op: 'is_null' },
        { column: 'a.b', op: 'is_not_null' },
        { column: 'a.b', op: '>=', param: 'p' },
      ],
      params: { p: { type: 'integer', default: 3 } },
      order_by: [{ column: 'a.b' }, { column: 'a.c', direction: 'desc' }],
    });
    assert.equal(def.conditions.length, 14);
    assert.deepEqual(def.params, { p: { type: 'integer', required: false, default: 3 } });
    assert.deepEqual(def.order_by, [
      { column: 'a.b', direction: 'asc' },
      { column: 'a.c', direction: 'desc' },
    ]);
  });

  it('survives a JSON round trip unchanged (what hub_queries stores)', () => {
    const def = parseQueryDefinition(productExample);
    assert.deepEqual(parseQueryDefinition(JSON.parse(JSON.stringify(def))), def);
  });

  describe('names the field of every error', () => {
    const cases: Array<[string, unknown, string]> = [
      ['a definition that is not an object', 'select 1', '(root)'],
      ['an upper-case name', { ...minimal, name: 'Widows' }, 'name:'],
      ['a name longer than 64', { ...minimal, name: `q${'x'.repeat(64)}` }, 'name:'],
      ['a lower-case entity', { ...minimal, entity: 'naf' }, 'entity:'],
      ['a missing entity', { ...minimal, entity: undefined }, 'entity:'],
      ['no tables', { ...minimal, tables: [] }, 'tables:'],
      ['nine tables', { ...minimal, tables: Array.from({ length: 9 }, (_, i) => `t${i}`) }, 'tables:'],
      ['a table name with a space', { ...minimal, tables: ['cspd personal'] }, 'tables[0]:'],
      ['a table name with a quote', { ...minimal, tables: ['cspd_personal_info', 'x"y'] }, 'tables[1]:'],
      ['a repeated table', { ...minimal, tables: ['a', 'a'] }, 'tables:'],
      ['an outer join', { ...minimal, join: 'outer' }, 'join:'],
      ['no columns', { ...minimal, columns: [] }, 'columns:'],
      ['a column without its table', { ...minimal, columns: ['national_id'] }, 'columns[0]:'],
      ['a column with a quote', { ...minimal, columns: ['a.b', "a.b' OR 1=1"] }, 'columns[1]:'],
      ['a column with a space', { ...minimal, columns: ['a.first name'] }, 'columns[0]:'],
      ['a repeated column', { ...minimal, columns: ['a.b', 'a.b'] }, 'columns:'],
      [
        'a condition column with a semicolon',
        withCondition({ column: 'a.b;drop', op: '=', value: 1 }),
        'conditions[0].column:',
      ],
      [
        'an unknown condition field',
        withCondition({ column: 'a.b', op: '=', value: 1, sql: '1=1' }),
        'conditions[0]:',
      ],
      ['in without a list', withCondition({ column: 'a.b', op: 'in', value: 'x' }), 'conditions[0].value:'],
      [
        'in with an empty list',
        withCondition({ column: 'a.b', op: 'in', value: [] }),
        'conditions[0].value:',
      ],
      [
        'not_in with an object in the list',
        withCondition({ column: 'a.b', op: 'not_in', value: [{}] }),
        'conditions[0].value:',
      ],
      ['in with a param', withCondition({ column: 'a.b', op: 'in', param: 'p' }), 'conditions[0].param:'],
      [
        'in with 1001 values',
        withCondition({ column: 'a.b', op: 'in', value: Array.from({ length: 1001 }, (_, i) => i) }),
        'conditions[0].value:',
      ],
      [
        'conditions binding more than 1000 values in all',
        {
          ...minimal,
          conditions: [0, 1].map(() => ({
            column: 'a.b',
            op: 'in',
            value: Array.from({ length: 600 }, (_, i) => i),
          })),
        },
        'conditions:',
      ],
      [
        'between with three values',
        withCondition({ column: 'a.b', op: 'between', value: [1, 2, 3] }),
        'conditions[0].value:',
      ],
      [
        'between with a null bound',
        withCondition({ column: 'a.b', op: 'between', value: [1, null] }),
        'conditions[0].value:',
      ],
      [
        'is_null with a value',
        withCondition({ column: 'a.b', op: 'is_null', value: 1 }),
        'conditions[0].value:',
      ],
      [
        'is_not_null with a param',
        withCondition({ column: 'a.b', op: 'is_not_null', param: 'p' }),
        'conditions[0].param:',
      ],
      ['= with neither value nor param', withCondition({ column: 'a.b', op: '=' }), 'conditions[0].value:'],
      [
        '= with both value and param',
        withCondition({ column: 'a.b', op: '=', value: 1, param: 'p' }),
        'conditions[0].value:',
      ],
      ['= with a null value', withCondition({ column: 'a.b', op: '=', value: null }), 'conditions[0].value:'],
      ['= with a list', withCondition({ column: 'a.b', op: '=', value: [1] }), 'conditions[0].value:'],
      [
        'a param name with a quote',
        withCondition({ column: 'a.b', op: '=', param: "p'" }),
        'conditions[0].param:',
      ],
      ['an unknown param type', { ...minimal, params: { p: { type: 'array' } } }, 'params.p.type:'],
      [
        'a default of the wrong type',
        { ...minimal, params: { p: { type: 'date', default: '2024-02-30' } } },
        'params.p.default:',
      ],
      ['an upper-case param name', { ...minimal, params: { Born: { type: 'date' } } }, 'params.Born'],
      ['a limit of 0', { ...minimal, limit: 0 }, 'limit:'],
      ['a limit above 10000', { ...minimal, limit: 10001 }, 'limit:'],
      ['a fractional limit', { ...minimal, limit: 1.5 }, 'limit:'],
      ['a limit given as text', { ...minimal, limit: '100' }, 'limit:'],
      [
        'an order direction other than asc or desc',
        { ...minimal, order_by: [{ column: 'a.b', direction: 'up' }] },
        'order_by[0].direction:',
      ],
      [
        'an order column without its table',
        { ...minimal, order_by: [{ column: 'b' }] },
        'order_by[0].column:',
      ],
      ['an unknown top-level field', { ...minimal, sql: 'select 1' }, 'sql'],
    ];
    for (const [what, raw, field] of cases) {
      it(`${what} → invalid_request naming ${field}`, () => assertRejected(raw, 'invalid_request', field));
    }
  });

  it('an unknown operator is invalid_operator naming the operator and its field', () => {
    const raw = {
      ...minimal,
      conditions: [
        { column: 'a.b', op: '=', value: 1 },
        { column: 'a.b', op: '~~', value: 1 },
      ],
    };
    assertRejected(raw, 'invalid_operator', 'conditions[1].op', '"~~"');
  });

  it('reports every bad field at once', () => {
    assertRejected(
      { ...minimal, name: 'Bad', limit: 0, join: 'full' },
      'invalid_request',
      'name:',
      'limit:',
      'join:',
    );
  });
});
