import assert from 'node:assert/strict';
import knexFactory, { type Knex } from 'knex';
import { buildAbility, type TableAbility } from '../../../privileges/ability.ts';
import type { CatalogTable } from '../../../warehouse/catalog.ts';
import type { ColumnType } from '../../../warehouse/core/column-types.ts';
import { HubError } from '../../../warehouse/core/errors.ts';
import type { BoundParams } from '../../../warehouse/query/bind-params.ts';
import {
  buildNextPosition,
  buildQueryPage,
  compilePageStart,
  compileQuery,
  describeCompiledSql,
  escapeLikeText,
  type KeysetPosition,
  type QueryPageRequest,
} from '../../../warehouse/query/compile-query.ts';
import {
  parseQueryDefinition,
  type QueryDefinition,
  type QueryDefinitionInput,
} from '../../../warehouse/query/query-definition.ts';
import { validateQueryDefinition } from '../../../warehouse/query/validate-query.ts';
import { assertHubError } from '../../support/hub-errors.ts';
import { productExample } from '../../support/query-product-example.ts';

// Neither toSQL() nor toNative() opens a connection, so all three dialects compile here.
const dialects: Array<{ name: string; knex: Knex; q: (identifier: string) => string }> = [
  {
    name: 'sqlite',
    knex: knexFactory({ client: 'better-sqlite3', useNullAsDefault: true }),
    q: (i) => `\`${i}\``,
  },
  { name: 'postgres', knex: knexFactory({ client: 'pg' }), q: (i) => `"${i}"` },
  { name: 'mssql', knex: knexFactory({ client: 'mssql' }), q: (i) => `[${i}]` },
];

const label = { en: 'label', ar: 'تسمية' };
function catalogTable(
  name: string,
  columns: Record<string, ColumnType>,
  options: { nationalIdColumn?: string; key?: string[] } = {},
): CatalogTable {
  const nationalIdColumn = options.nationalIdColumn ?? 'national_id';
  return {
    name,
    entity: name.split('_')[0]!.toUpperCase(),
    connector: name.replace(/_/g, '-'),
    label,
    nationalIdColumn,
    key: options.key ?? [nationalIdColumn],
    rowCount: 0,
    loadedAt: null,
    columns: Object.entries(columns).map(([column, type]) => ({ name: column, type, label })),
  };
}

const catalog: CatalogTable[] = [
  catalogTable('cspd_personal_info', {
    national_id: 'string',
    first_name: 'string',
    family_name: 'string',
    marital_status: 'string',
    birth_date: 'date',
    household_id: 'integer',
  }),
  catalogTable(
    'dvld_vehicles',
    {
      national_id: 'string',
      registration_number: 'string',
      vehicle_type: 'string',
      model_year: 'integer',
      engine_litres: 'number',
      insured: 'boolean',
    },
    { key: ['registration_number'] },
  ),
  catalogTable(
    'ssc_insured',
    { insured_nid: 'string', employer_name: 'text', start_date: 'date', updated_at: 'datetime' },
    {
      nationalIdColumn: 'insured_nid',
      key: ['insured_nid', 'start_date'],
    },
  ),
];

const define = (overrides: Partial<QueryDefinitionInput> = {}): QueryDefinition =>
  parseQueryDefinition({ ...productExample, ...overrides });
const onePerson = (
  conditions: QueryDefinitionInput['conditions'],
  params: QueryDefinitionInput['params'] = {},
): QueryDefinition =>
  define({ tables: ['cspd_personal_info'], columns: ['cspd_personal_info.first_name'], conditions, params });
/** Tables and columns of its own, without the example's conditions and parameter. */
const unfiltered = (overrides: Partial<QueryDefinitionInput>): QueryDefinition =>
  define({ conditions: [], params: {}, ...overrides });

const firstPage: QueryPageRequest = { page: 1, pageSize: 100 };
/** An entity that owns every table reads everything: these tests are about SQL, not grants. */
const readsAll = buildAbility(
  [],
  catalog.map((t) => t.name),
);
const compileWith = (
  knex: Knex,
  def: QueryDefinition,
  params: BoundParams = {},
  page = firstPage,
  ability: TableAbility = readsAll,
) => compileQuery(knex, def, params, page, catalog, ability);

/** The WHERE clause of a compiled statement and its bindings without the paging ones. */
function whereOf(
  knex: Knex,
  def: QueryDefinition,
  params: BoundParams = {},
): { where: string; bindings: unknown[] } {
  const { sql, bindings } = compileWith(knex, def, params).builder.toSQL();
  const where = / where (.*) order by /.exec(sql)?.[1] ?? '';
  // The page's row count is the first binding on SQL Server (top), the last elsewhere (limit).
  const paging = sql.startsWith('select top (?)') ? bindings.slice(1) : bindings.slice(0, -1);
  return { where, bindings: [...paging] };
}

describe('query compilation', () => {
  after(async () => {
    for (const d of dialects) await d.knex.destroy();
  });

  describe('validateQueryDefinition', () => {
    it('returns every table and column the query reads (select, conditions, order_by, join keys), once each', () => {
      const def = define({
        conditions: [
          { column: 'cspd_personal_info.marital_status', op: '=', value: 'W' },
          { column: 'cspd_personal_info.birth_date', op: '<=', param: 'born_before' },
          { column: 'cspd_personal_info.first_name', op: 'is_not_null' },
        ],
        order_by: [
          { column: 'dvld_vehicles.model_year', direction: 'desc' },
          { column: 'cspd_personal_info.national_id' },
        ],
      });
      assert.deepEqual(validateQueryDefinition(def, catalog), {
        tables: ['cspd_personal_info', 'dvld_vehicles'],
        columns: [
          { table: 'cspd_personal_info', column: 'national_id' },
          { table: 'cspd_personal_info', column: 'first_name' },
          { table: 'dvld_vehicles', column: 'vehicle_type' },
          { table: 'cspd_personal_info', column: 'marital_status' },
          { table: 'cspd_personal_info', column: 'birth_date' },
          { table: 'dvld_vehicles', column: 'model_year' },
          { table: 'dvld_vehicles', column: 'national_id' },
        ],
      });
      const single = onePerson([]);
      assert.deepEqual(validateQueryDefinition(single, catalog), {
        tables: ['cspd_personal_info'],
        columns: [{ table: 'cspd_personal_info', column: 'first_name' }],
      });
    });

    it('an unknown table → unknown_table naming every one', () => {
      const def = define({ tables: ['cspd_personal_info', 'moe_students', 'hub_users'] });
      assertHubError(
        () => validateQueryDefinition(def, catalog),
        'unknown_table',
        'moe_students',
        'hub_users',
      );
    });

    it('columns outside the query tables or the catalog → unknown_column naming all of them at once', () => {
      const def = define({
        tables: ['cspd_personal_info'],
        columns: [
          'cspd_personal_info.national_id',
          'cspd_personal_info.salary',
          'dvld_vehicles.vehicle_type',
        ],
        conditions: [{ column: 'cspd_personal_info.password', op: 'is_null' }],
        params: {},
        order_by: [{ column: 'ssc_insured.employer_name' }],
      });
      assertHubError(
        () => validateQueryDefinition(def, catalog),
        'unknown_column',
        'cspd_personal_info.salary',
        'dvld_vehicles.vehicle_type',
        'cspd_personal_info.password',
        'ssc_insured.employer_name',
      );
    });

    it('identifiers with quotes, spaces or comments never pass, even in a definition that skipped parsing', () => {
      const hostile = [
        'cspd_personal_info.first_name" FROM hub_users --',
        "cspd_personal_info.first_name' OR '1'='1",
        'cspd_personal_info.first name',
        'cspd_personal_info.[first_name]',
        'cspd_personal_info.first_name;DROP TABLE cspd_personal_info',
      ];
      for (const column of hostile) {
        const def: QueryDefinition = { ...define(), columns: [column] };
        assertHubError(() => validateQueryDefinition(def, catalog), 'unknown_column', column);
        for (const d of dialects)
          assertHubError(
            () => compileWith(d.knex, def, { born_before: '1980-01-01' }),
            'unknown_column',
            column,
          );
      }
      const table: QueryDefinition = { ...define(), tables: ['cspd_personal_info"; DROP TABLE x; --'] };
      assertHubError(() => validateQueryDefinition(table, catalog), 'unknown_table', 'DROP TABLE x');
    });

    it('a condition on an undefined parameter → invalid_parameter naming it', () => {
      const def = define({ params: {} });
      assertHubError(
        () => validateQueryDefinition(def, catalog),
        'invalid_parameter',
        'conditions[1].param',
        'born_before',
      );
    });

    it('a parameter no condition uses → invalid_parameter naming it', () => {
      const def = define({
        params: { born_before: { type: 'date', required: true }, region: { type: 'string' } },
      });
      assertHubError(() => validateQueryDefinition(def, catalog), 'invalid_parameter', 'params.region');
    });

    it('a parameter whose type does not fit the column → invalid_parameter naming it', () => {
      const def = define({ params: { born_before: { type: 'integer', required: true } } });
      assertHubError(
        () => validateQueryDefinition(def, catalog),
        'invalid_parameter',
        'born_before',
        'cspd_personal_info.birth_date',
      );
    });

    it('values that do not fit the column type → invalid_request naming the condition', () => {
      const cases: Array<[QueryDefinitionInput['conditions'], string]> = [
        [[{ column: 'cspd_personal_info.household_id', op: '=', value: '12' }], 'conditions[0].value'],
        [[{ column: 'cspd_personal_info.birth_date', op: '>', value: '1980-02-30' }], 'conditions[0].value'],
        [
          [{ column: 'cspd_personal_info.household_id', op: 'in', value: [1, 'two'] }],
          'conditions[0].value[1]',
        ],
        [
          [{ column: 'cspd_personal_info.first_name', op: 'between', value: ['a', 3] }],
          'conditions[0].value[1]',
        ],
        [[{ column: 'cspd_personal_info.household_id', op: 'like', value: '1%' }], 'conditions[0].op'],
        [[{ column: 'cspd_personal_info.first_name', op: 'starts_with', value: 5 }], 'conditions[0].value'],
        [[{ column: 'cspd_personal_info.first_name', op: 'like', value: 'abc\\' }], 'conditions[0].value'],
      ];
      for (const [conditions, field] of cases)
        assertHubError(
          () => validateQueryDefinition(onePerson(conditions), catalog),
          'invalid_request',
          field,
        );
      const vehicles = define({
        tables: ['dvld_vehicles'],
        columns: ['dvld_vehicles.vehicle_type'],
        conditions: [{ column: 'dvld_vehicles.insured', op: '>', value: true }],
        params: {},
      });
      assertHubError(
        () => validateQueryDefinition(vehicles, catalog),
        'invalid_request',
        'conditions[0].op',
        'boolean',
      );
    });
  });

  describe('compileQuery refuses what the ability does not allow, on its own', () => {
    const [{ knex }] = dialects as [(typeof dialects)[number]];
    const assertDenied = (fn: () => unknown, code: string, denied: string[]) =>
      assert.throws(fn, (err: unknown) => {
        assert.ok(err instanceof HubError, String(err));
        assert.equal(err.status, 403);
        assert.equal(err.code, code);
        assert.deepEqual(err.details?.denied, denied);
        return true;
      });
    // NAF may read some civil-status columns and, of the vehicles, only the type.
    const naf = buildAbility(
      [
        { table: 'cspd_personal_info', column: 'national_id' },
        { table: 'cspd_personal_info', column: 'first_name' },
        { table: 'cspd_personal_info', column: 'marital_status' },
        { table: 'cspd_personal_info', column: 'birth_date' },
        { table: 'dvld_vehicles', column: 'vehicle_type' },
      ],
      [],
    );

    it('a listed table with no grant is named as a table, though no column of it is selected', () => {
      const def = unfiltered({
        tables: ['cspd_personal_info', 'ssc_insured'],
        columns: ['cspd_personal_info.first_name'],
      });
      assertDenied(() => compileWith(knex, def, {}, firstPage, naf), 'table_not_granted', ['ssc_insured']);
    });

    it('a join reads the national ID column of every joined table', () => {
      const def = define();
      assertDenied(
        () => compileWith(knex, def, { born_before: '1980-01-01' }, firstPage, naf),
        'column_not_granted',
        ['dvld_vehicles.national_id'],
      );
    });

    it('filtered and sorted columns count as read, all named in one 403', () => {
      const def = onePerson([{ column: 'cspd_personal_info.family_name', op: 'is_null' }]);
      const sorted = {
        ...def,
        order_by: [{ column: 'cspd_personal_info.household_id', direction: 'asc' as const }],
      };
      assertDenied(() => compileWith(knex, sorted, {}, firstPage, naf), 'column_not_granted', [
        'cspd_personal_info.family_name',
        'cspd_personal_info.household_id',
      ]);
    });

    it('the automatic order skips record keys the entity may not read', () => {
      const vehiclesOnly = buildAbility([{ table: 'dvld_vehicles', column: 'vehicle_type' }], []);
      const def = unfiltered({ tables: ['dvld_vehicles'], columns: ['dvld_vehicles.vehicle_type'] });
      const { sql } = compileWith(knex, def, {}, firstPage, vehiclesOnly).builder.toSQL();
      assert.ok(sql.endsWith('order by `dvld_vehicles`.`vehicle_type` asc limit ?'), sql);
      const withKey = buildAbility(
        [
          { table: 'dvld_vehicles', column: 'vehicle_type' },
          { table: 'dvld_vehicles', column: 'registration_number' },
        ],
        [],
      );
      const keyed = compileWith(knex, def, {}, firstPage, withKey).builder.toSQL().sql;
      assert.ok(
        keyed.endsWith(
          'order by `dvld_vehicles`.`registration_number` asc, `dvld_vehicles`.`vehicle_type` asc limit ?',
        ),
        keyed,
      );
    });
  });

  for (const { name, knex, q } of dialects) {
    const col = (ref: string) => ref.split('.').map(q).join('.');

    describe(`compileQuery [${name}]`, () => {
      it('selects each column as c0, c1, ... from the first table, joined to the others on the national ID', () => {
        const compiled = compileWith(knex, define(), { born_before: '1980-01-01' });
        const { sql } = compiled.builder.toSQL();
        assert.ok(
          sql.includes(
            `${col('cspd_personal_info.national_id')} as ${q('c0')}, ${col('cspd_personal_info.first_name')} as ${q('c1')}, ` +
              `${col('dvld_vehicles.vehicle_type')} as ${q('c2')}, ` +
              // The record key of the vehicles decides where a page ends, so it is fetched too.
              `${col('dvld_vehicles.registration_number')} as ${q('k1')} from ${q('cspd_personal_info')} ` +
              `inner join ${q('dvld_vehicles')} on ${col('cspd_personal_info.national_id')} = ${col('dvld_vehicles.national_id')} ` +
              `where ${col('cspd_personal_info.marital_status')} = ? and ${col('cspd_personal_info.birth_date')} <= ? ` +
              `order by ${col('cspd_personal_info.national_id')} asc, ${col('dvld_vehicles.registration_number')} asc, ` +
              `${col('cspd_personal_info.first_name')} asc, ${col('dvld_vehicles.vehicle_type')} asc`,
          ),
          sql,
        );
        assert.deepEqual(
          compiled.columns.map((c) => [c.alias, c.column, c.type]),
          [
            ['c0', 'cspd_personal_info.national_id', 'string'],
            ['c1', 'cspd_personal_info.first_name', 'string'],
            ['c2', 'dvld_vehicles.vehicle_type', 'string'],
          ],
        );
      });

      it('left joins when asked, on each table own national ID column', () => {
        const def = unfiltered({
          tables: ['cspd_personal_info', 'dvld_vehicles', 'ssc_insured'],
          join: 'left',
          columns: ['cspd_personal_info.first_name', 'ssc_insured.employer_name'],
        });
        const { sql } = compileWith(knex, def).builder.toSQL();
        assert.ok(
          sql.includes(
            `left join ${q('dvld_vehicles')} on ${col('cspd_personal_info.national_id')} = ${col('dvld_vehicles.national_id')}`,
          ),
          sql,
        );
        assert.ok(
          sql.includes(
            `left join ${q('ssc_insured')} on ${col('cspd_personal_info.national_id')} = ${col('ssc_insured.insured_nid')}`,
          ),
          sql,
        );
        assert.ok(!sql.includes('inner join'));
        assert.ok(
          sql.includes(
            `order by ${col('cspd_personal_info.national_id')} asc, ${col('dvld_vehicles.registration_number')} asc, ` +
              `${col('ssc_insured.insured_nid')} asc, ${col('ssc_insured.start_date')} asc, ` +
              `${col('cspd_personal_info.first_name')} asc, ${col('ssc_insured.employer_name')} asc`,
          ),
          sql,
        );
      });

      it('orders by order_by first, then the readable keys and the selected columns not already named', () => {
        const def = define({
          order_by: [
            { column: 'dvld_vehicles.model_year', direction: 'desc' },
            { column: 'cspd_personal_info.national_id', direction: 'desc' },
          ],
        });
        const { sql } = compileWith(knex, def, { born_before: '1980-01-01' }).builder.toSQL();
        assert.ok(
          sql.includes(
            `order by ${col('dvld_vehicles.model_year')} desc, ${col('cspd_personal_info.national_id')} desc, ` +
              `${col('dvld_vehicles.registration_number')} asc, ${col('cspd_personal_info.first_name')} asc, ` +
              `${col('dvld_vehicles.vehicle_type')} asc`,
          ),
          sql,
        );
      });

      describe('paging', () => {
        const paged = (limit: number, page: QueryPageRequest) => {
          const compiled = compileWith(knex, define({ limit }), { born_before: '1980-01-01' }, page);
          const { sql, bindings } = compiled.builder.toSQL();
          return {
            sql,
            paging: name === 'mssql' ? pagingOfMssql(sql, bindings) : pagingOf(sql, bindings),
            compiled,
          };
        };
        const pagingOf = (sql: string, bindings: readonly unknown[]) => {
          const offset = sql.endsWith(' offset ?');
          return { limit: bindings.at(offset ? -2 : -1), offset: offset ? bindings.at(-1) : 0 };
        };
        const pagingOfMssql = (sql: string, bindings: readonly unknown[]) =>
          sql.startsWith('select top (?)')
            ? { limit: bindings[0], offset: 0 }
            : { limit: bindings.at(-1), offset: bindings.at(-2) };

        it('page 1 asks for one row more than the page, without an offset', () => {
          const { sql, paging } = paged(100, { page: 1, pageSize: 10 });
          assert.deepEqual(paging, { limit: 11, offset: 0 });
          assert.ok(name === 'mssql' ? sql.startsWith('select top (?) ') : sql.endsWith(' limit ?'), sql);
        });

        it('page 2 skips the first page and still looks one row ahead', () => {
          const { sql, paging } = paged(100, { page: 2, pageSize: 10 });
          assert.deepEqual(paging, { limit: 11, offset: 10 });
          assert.ok(
            name === 'mssql'
              ? sql.endsWith(' offset ? rows fetch next ? rows only')
              : sql.endsWith(' limit ? offset ?'),
            sql,
          );
        });

        it('the last page stops at the definition limit and looks one row past it, to tell a cut-off', () => {
          assert.deepEqual(paged(25, { page: 3, pageSize: 10 }).paging, { limit: 6, offset: 20 });
          assert.deepEqual(paged(30, { page: 3, pageSize: 10 }).paging, { limit: 11, offset: 20 });
          assert.deepEqual(paged(100, { page: 1, pageSize: 500 }).paging, { limit: 101, offset: 0 });
        });

        it('a page past the limit returns nothing but looks at the first row beyond the limit', () => {
          const { paging, compiled } = paged(25, { page: 4, pageSize: 10 });
          assert.deepEqual(paging, { limit: 1, offset: 25 });
          const row = { c0: '1000000001', c1: 'فاطمة', c2: 'سيارة' };
          assert.deepEqual(buildQueryPage(compiled, [row]).rows, []);
          assert.equal(buildQueryPage(compiled, [row]).truncated, true);
          assert.equal(buildQueryPage(compiled, []).truncated, false);
        });

        it('a look-ahead row at the limit means truncated, never has_more', () => {
          const row = (n: number) => ({ c0: `10000000${n}`, c1: 'فاطمة', c2: 'سيارة' });
          const last = paged(5, { page: 3, pageSize: 2 }).compiled;
          assert.deepEqual(
            [buildQueryPage(last, [row(5), row(6)])].map((p) => [p.rows.length, p.has_more, p.truncated]),
            [[1, false, true]],
          );
          const exact = paged(4, { page: 2, pageSize: 2 }).compiled;
          assert.deepEqual(
            [buildQueryPage(exact, [row(3), row(4), row(5)])].map((p) => [
              p.rows.length,
              p.has_more,
              p.truncated,
            ]),
            [[2, false, true]],
          );
          assert.deepEqual(
            [buildQueryPage(exact, [row(3), row(4)])].map((p) => [p.rows.length, p.has_more, p.truncated]),
            [[2, false, false]],
          );
        });

        it('has_more comes from the look-ahead row, which is dropped, and columns are renamed back', () => {
          const { compiled } = paged(100, { page: 2, pageSize: 2 });
          const row = (n: number) => ({ c0: `10000000${n}`, c1: 'فاطمة', c2: 'سيارة' });
          const full = buildQueryPage(compiled, [row(1), row(2), row(3)]);
          assert.deepEqual(full, {
            columns: [
              'cspd_personal_info.national_id',
              'cspd_personal_info.first_name',
              'dvld_vehicles.vehicle_type',
            ],
            rows: [1, 2].map((n) => ({
              'cspd_personal_info.national_id': `10000000${n}`,
              'cspd_personal_info.first_name': 'فاطمة',
              'dvld_vehicles.vehicle_type': 'سيارة',
            })),
            has_more: true,
            truncated: false,
          });
          assert.equal(buildQueryPage(compiled, [row(1), row(2)]).has_more, false);
          assert.equal(buildQueryPage(compiled, []).has_more, false);
        });

        it('a bad page or page size → invalid_request naming it', () => {
          const def = define();
          for (const [page, field] of [
            [{ page: 0, pageSize: 10 }, 'page:'],
            [{ page: 1.5, pageSize: 10 }, 'page:'],
            [{ page: 1, pageSize: 0 }, 'page_size:'],
            [{ page: 1, pageSize: 10001 }, 'page_size:'],
          ] as const) {
            assertHubError(
              () => compileWith(knex, def, { born_before: '1980-01-01' }, page),
              'invalid_request',
              field,
            );
          }
        });
      });

      it('compiles every operator with values as bindings', () => {
        const c = col('cspd_personal_info.first_name');
        const n = col('cspd_personal_info.household_id');
        const cases: Array<[QueryDefinitionInput['conditions'], string, unknown[]]> = [
          [[{ column: 'cspd_personal_info.first_name', op: '=', value: 'ليلى' }], `${c} = ?`, ['ليلى']],
          [[{ column: 'cspd_personal_info.first_name', op: '!=', value: 'ليلى' }], `${c} <> ?`, ['ليلى']],
          [[{ column: 'cspd_personal_info.household_id', op: '<', value: 5 }], `${n} < ?`, [5]],
          [[{ column: 'cspd_personal_info.household_id', op: '<=', value: 5 }], `${n} <= ?`, [5]],
          [[{ column: 'cspd_personal_info.household_id', op: '>', value: 5 }], `${n} > ?`, [5]],
          [[{ column: 'cspd_personal_info.household_id', op: '>=', value: 5 }], `${n} >= ?`, [5]],
          [
            [{ column: 'cspd_personal_info.household_id', op: 'in', value: [1, 2, 3] }],
            `${n} in (?, ?, ?)`,
            [1, 2, 3],
          ],
          [
            [{ column: 'cspd_personal_info.household_id', op: 'not_in', value: [1, 2] }],
            `${n} not in (?, ?)`,
            [1, 2],
          ],
          [
            [{ column: 'cspd_personal_info.first_name', op: 'like', value: '%مد%' }],
            `${c} LIKE ? ESCAPE '\\'`,
            ['%مد%'],
          ],
          [
            [{ column: 'cspd_personal_info.first_name', op: 'starts_with', value: 'مح' }],
            `${c} LIKE ? ESCAPE '\\'`,
            ['مح%'],
          ],
          [
            [{ column: 'cspd_personal_info.household_id', op: 'between', value: [2, 9] }],
            `${n} between ? and ?`,
            [2, 9],
          ],
          [[{ column: 'cspd_personal_info.first_name', op: 'is_null' }], `${c} is null`, []],
          [[{ column: 'cspd_personal_info.first_name', op: 'is_not_null' }], `${c} is not null`, []],
        ];
        for (const [conditions, where, bindings] of cases) {
          assert.deepEqual(
            whereOf(knex, onePerson(conditions)),
            { where, bindings },
            JSON.stringify(conditions),
          );
        }
      });

      it('binds parameters; an optional one left out drops its condition; a required one cannot be left out', () => {
        const def = onePerson(
          [
            { column: 'cspd_personal_info.birth_date', op: '>=', param: 'born_after' },
            { column: 'cspd_personal_info.first_name', op: 'starts_with', param: 'prefix' },
          ],
          { born_after: { type: 'date', required: true }, prefix: { type: 'string' } },
        );
        const b = col('cspd_personal_info.birth_date');
        assert.deepEqual(whereOf(knex, def, { born_after: '1990-01-01', prefix: '5%' }), {
          where: `${b} >= ? and ${col('cspd_personal_info.first_name')} LIKE ? ESCAPE '\\'`,
          bindings: ['1990-01-01', '5\\%%'],
        });
        assert.deepEqual(whereOf(knex, def, { born_after: '1990-01-01' }), {
          where: `${b} >= ?`,
          bindings: ['1990-01-01'],
        });
        assertHubError(
          () => compileWith(knex, def, { prefix: 'x' }),
          'invalid_parameter',
          'params.born_after',
        );
      });

      it('refuses a like pattern ending in a lone escape character, which PostgreSQL would reject', () => {
        const def = onePerson([{ column: 'cspd_personal_info.first_name', op: 'like', param: 'pattern' }], {
          pattern: { type: 'string', required: true },
        });
        assertHubError(
          () => compileWith(knex, def, { pattern: 'محمد\\' }),
          'invalid_parameter',
          'params.pattern',
        );
        assert.deepEqual(whereOf(knex, def, { pattern: 'محمد\\\\' }).bindings, ['محمد\\\\']);
        assert.deepEqual(whereOf(knex, def, { pattern: '\\%' }).bindings, ['\\%']);
      });

      it('never puts a value into the SQL text, whatever it contains', () => {
        const attacks = [
          "x' OR '1'='1",
          "'; DROP TABLE cspd_personal_info;--",
          '" OR ""="',
          "\\'; SELECT * FROM hub_users; --",
          "1); DELETE FROM hub_grants WHERE ('1'='1",
          ']; DROP TABLE [cspd_personal_info]; --',
          '$1 OR 1=1',
          '@p0',
        ];
        for (const attack of attacks) {
          const def = onePerson(
            [
              { column: 'cspd_personal_info.first_name', op: '=', value: attack },
              { column: 'cspd_personal_info.family_name', op: 'like', value: attack },
              { column: 'cspd_personal_info.marital_status', op: 'in', value: [attack, 'W'] },
              { column: 'cspd_personal_info.first_name', op: 'between', value: [attack, attack] },
              { column: 'cspd_personal_info.family_name', op: 'starts_with', param: 'prefix' },
              { column: 'cspd_personal_info.first_name', op: '!=', param: 'name' },
            ],
            { prefix: { type: 'string', required: true }, name: { type: 'string', required: true } },
          );
          const compiled = compileWith(knex, def, { prefix: attack, name: attack });
          for (const { sql, bindings } of [compiled.builder.toSQL(), describeCompiledSql(compiled.builder)]) {
            const text = sql.replaceAll("ESCAPE '\\'", '');
            for (const piece of ["'", '"', 'DROP', 'DELETE', 'hub_users', '--', ';', 'OR']) {
              if (piece === '"' && name === 'postgres') continue;
              assert.ok(
                !text.includes(piece),
                `${name}: ${JSON.stringify(piece)} reached the SQL text: ${sql}`,
              );
            }
            assert.equal(bindings.filter((b) => b === attack).length, 6, JSON.stringify(bindings));
          }
        }
      });
    });
  }

  describe('starts_with escaping', () => {
    it('escapes %, _, the escape character and [ so the value matches only itself', () => {
      assert.equal(escapeLikeText('50%_off\\[x]'), '50\\%\\_off\\\\\\[x]');
      assert.equal(escapeLikeText('محمد'), 'محمد');
    });

    it('binds the escaped value followed by % on every dialect; like keeps its pattern as given', () => {
      for (const { knex } of dialects) {
        const def = onePerson([
          { column: 'cspd_personal_info.first_name', op: 'starts_with', value: '100%_[a]\\' },
          { column: 'cspd_personal_info.family_name', op: 'like', value: '1_0%' },
        ]);
        assert.deepEqual(whereOf(knex, def).bindings, ['100\\%\\_\\[a]\\\\%', '1_0%']);
      }
    });
  });

  describe('keyset pages (next)', () => {
    const [{ knex }] = dialects as [(typeof dialects)[number]];
    const widowsByBirth = define({
      order_by: [{ column: 'cspd_personal_info.birth_date', direction: 'desc' }],
    });
    const widowsOrder =
      'cspd_personal_info.birth_date desc,cspd_personal_info.national_id asc,dvld_vehicles.registration_number asc';
    // With only the first name readable, no key tells two rows of the same name apart.
    const namesOnly = buildAbility([{ table: 'cspd_personal_info', column: 'first_name' }], []);
    const firstNames = onePerson([]);
    const after = (
      values: KeysetPosition['values'],
      order = widowsOrder,
      more: Partial<KeysetPosition> = {},
    ) => ({
      page: 1,
      pageSize: 10,
      after: { order, values, seen: 20, ties: 0, page: 3, ...more },
    });
    const whereAndPaging = (
      knex: Knex,
      def: QueryDefinition,
      page: QueryPageRequest,
      params: BoundParams,
    ) => {
      const { sql, bindings } = compileWith(knex, def, params, page).builder.toSQL();
      return { where: / where (.*) order by /.exec(sql)?.[1] ?? '', sql, bindings };
    };

    for (const { name, knex, q } of dialects) {
      const col = (ref: string) => ref.split('.').map(q).join('.');

      it(`[${name}] continues after the last row with a range on the first key and no offset`, () => {
        const { where, sql, bindings } = whereAndPaging(
          knex,
          widowsByBirth,
          after(['1980-05-01', '1000000001', '10-1001']),
          { born_before: '1990-01-01' },
        );
        const [born, nid, plate] = [
          col('cspd_personal_info.birth_date'),
          col('cspd_personal_info.national_id'),
          col('dvld_vehicles.registration_number'),
        ];
        // Keys of the base and inner-joined tables and a filtered column never hold NULL: plain comparisons.
        assert.ok(
          where.endsWith(
            `and (${born} <= ? and (${born} < ? or (${born} = ? and (${nid} > ? or (${nid} = ? and ${plate} > ?)))))`,
          ),
          where,
        );
        const keyset = ['1980-05-01', '1980-05-01', '1980-05-01', '1000000001', '1000000001', '10-1001'];
        assert.deepEqual(name === 'mssql' ? bindings.slice(1) : bindings.slice(0, -1), [
          'W',
          '1990-01-01',
          ...keyset,
        ]);
        assert.equal(name === 'mssql' ? bindings[0] : bindings.at(-1), 11);
        assert.doesNotMatch(sql, /offset/);
      });

      it(`[${name}] a sort key that may hold NULL follows the database's own place for NULLs`, () => {
        const def = unfiltered({
          tables: ['cspd_personal_info'],
          columns: ['cspd_personal_info.first_name'],
          order_by: [{ column: 'cspd_personal_info.family_name', direction: 'asc' }],
        });
        const order = 'cspd_personal_info.family_name asc,cspd_personal_info.national_id asc';
        const family = col('cspd_personal_info.family_name');
        const nid = col('cspd_personal_info.national_id');
        const fromValue = whereAndPaging(knex, def, after(['Haddad', '1000000001'], order), {}).where;
        const fromNull = whereAndPaging(knex, def, after([null, '1000000001'], order), {}).where;
        if (name === 'postgres') {
          // PostgreSQL sorts NULL after every value in an ascending order.
          assert.equal(
            fromValue,
            `((${family} >= ? or ${family} is null) and ((${family} > ? or ${family} is null) or (${family} = ? and ${nid} > ?)))`,
          );
          assert.equal(fromNull, `(${family} is null and (${family} is null and ${nid} > ?))`);
        } else {
          // SQLite and SQL Server sort NULL before every value.
          assert.equal(fromValue, `(${family} >= ? and (${family} > ? or (${family} = ? and ${nid} > ?)))`);
          assert.equal(fromNull, `(${family} is not null or (${family} is null and ${nid} > ?))`);
        }
      });

      it(`[${name}] an order that cannot tell rows apart includes the level rows and skips those returned`, () => {
        const compiled = compileWith(
          knex,
          firstNames,
          {},
          after(['فاطمة'], 'cspd_personal_info.first_name asc', { ties: 4 }),
          namesOnly,
        );
        const { sql, bindings } = compiled.builder.toSQL();
        const first = col('cspd_personal_info.first_name');
        const beyond = name === 'postgres' ? `(${first} > ? or ${first} is null)` : `${first} > ?`;
        assert.ok(sql.includes(`where (${beyond} or ${first} = ?) order by ${first} asc`), sql);
        assert.ok(bindings.includes(4), 'the ties already returned are skipped');
        assert.equal(compiled.distinct, false);
      });
    }

    describe('a page asked for by number', () => {
      const startOf = (knex: Knex, page: QueryPageRequest, def = widowsByBirth, ability = readsAll) =>
        compilePageStart(knex, def, { born_before: '1990-01-01' }, page, catalog, ability);

      for (const { name, knex, q } of dialects) {
        it(`[${name}] is found by reading only the sort keys of the rows before it, then continued from the last of them`, () => {
          const start = startOf(knex, { page: 3, pageSize: 10 })!;
          const { sql, bindings } = start.builder.toSQL();
          const [born, nid, plate] = [
            'cspd_personal_info.birth_date',
            'cspd_personal_info.national_id',
            'dvld_vehicles.registration_number',
          ].map((ref) => ref.split('.').map(q).join('.'));
          // Only the sort keys are read for the rows skipped, and only they order them: the 20th row.
          assert.ok(
            sql.startsWith(
              `select ${born} as ${q('k0')}, ${nid} as ${q('c0')}, ${plate} as ${q('k2')} from `,
            ),
            sql,
          );
          assert.ok(sql.includes(` order by ${born} desc, ${nid} asc, ${plate} asc `), sql);
          assert.deepEqual(bindings.slice(2), name === 'mssql' ? [19, 1] : [1, 19]);
          const position = start.positionAfter({ k0: '1980-05-01', c0: '1000000001', k2: '10-1001' });
          assert.deepEqual(position, {
            order: widowsOrder,
            values: ['1980-05-01', '1000000001', '10-1001'],
            seen: 20,
            ties: 0,
            page: 3,
          });
          // The page itself starts there, as from a next token: no offset.
          const page = compileWith(
            knex,
            widowsByBirth,
            { born_before: '1990-01-01' },
            { page: 3, pageSize: 10, after: position },
          );
          assert.deepEqual([page.page, page.seen, page.take], [3, 20, 10]);
          assert.doesNotMatch(page.builder.toSQL().sql, /offset/);
        });
      }

      it('is read at its offset on page 1, at or past the limit, after a next token, or in an order that cannot tell rows apart', () => {
        const { knex } = dialects[0]!;
        assert.equal(startOf(knex, { page: 1, pageSize: 10 }), null);
        const limited = define({ limit: 20 });
        assert.equal(startOf(knex, { page: 3, pageSize: 10 }, limited), null);
        assert.equal(startOf(knex, { page: 5, pageSize: 10 }, limited), null);
        assert.notEqual(startOf(knex, { page: 2, pageSize: 10 }, limited), null);
        const position = { order: widowsOrder, values: null, seen: 20, ties: 0, page: 3 };
        assert.equal(startOf(knex, { page: 1, pageSize: 10, after: position }), null);
        assert.equal(
          compilePageStart(knex, firstNames, {}, { page: 2, pageSize: 10 }, catalog, namesOnly),
          null,
        );
      });

      it('is refused like the page: a column not granted → 403, a bad page → 400', () => {
        const { knex } = dialects[0]!;
        assert.throws(
          () => startOf(knex, { page: 2, pageSize: 10 }, widowsByBirth, namesOnly),
          (err: unknown) => err instanceof HubError && err.status === 403,
        );
        assertHubError(() => startOf(knex, { page: 0, pageSize: 10 }), 'invalid_request', 'page');
      });
    });

    it('a position made for another order (the grants changed) → invalid_request', () => {
      assertHubError(
        () =>
          compileWith(
            knex,
            widowsByBirth,
            { born_before: '1990-01-01' },
            after(
              ['1980-05-01', '1000000001'],
              'cspd_personal_info.birth_date desc,cspd_personal_info.national_id asc',
            ),
          ),
        'invalid_request',
        'next:',
        'order has changed',
      );
    });

    it('the next position holds the last returned row, the rows seen and the page number', () => {
      const compiled = compileWith(
        knex,
        widowsByBirth,
        { born_before: '1990-01-01' },
        { page: 2, pageSize: 2 },
      );
      const row = (n: number, born: string | null) => ({
        c0: `100000000${n}`,
        c1: 'فاطمة',
        c2: 'سيارة',
        k2: `10-100${n}`,
        k0: born,
      });
      const position = buildNextPosition(compiled, [
        row(1, '1980-01-01'),
        row(2, null),
        row(3, '1970-01-01'),
      ]);
      assert.deepEqual(position, {
        order: widowsOrder,
        values: [null, '1000000002', '10-1002'],
        seen: 4,
        ties: 0,
        page: 3,
      });
      assert.equal(
        buildNextPosition(compiled, [row(1, '1980-01-01'), row(2, null)]),
        null,
        'no look-ahead row',
      );
    });

    it('counts the returned rows level with the last one, across pages when the whole page is level', () => {
      const order = 'cspd_personal_info.first_name asc';
      const page = (request: QueryPageRequest) => compileWith(knex, firstNames, {}, request, namesOnly);
      const rows = (...names: string[]) => names.map((c0) => ({ c0 }));
      const first = buildNextPosition(page({ page: 1, pageSize: 3 }), rows('أمل', 'هدى', 'هدى', 'هدى'));
      assert.deepEqual(first, { order, values: ['هدى'], seen: 3, ties: 2, page: 2 });
      const second = buildNextPosition(
        page({ page: 1, pageSize: 2, after: first }),
        rows('هدى', 'هدى', 'هدى'),
      );
      assert.deepEqual(second, { order, values: ['هدى'], seen: 5, ties: 4, page: 3 });
      // A numbered page that is level throughout may continue a run begun earlier: the next page counts rows.
      const numbered = buildNextPosition(page({ page: 2, pageSize: 2 }), rows('هدى', 'هدى', 'هدى'));
      assert.deepEqual(numbered, { order, values: null, seen: 4, ties: 2, page: 3 });
      const counted = page({ page: 1, pageSize: 2, after: numbered });
      assert.match(counted.builder.toSQL().sql, / limit \? offset \?$/);
      assert.deepEqual(counted.builder.toSQL().bindings, [3, 4]);
    });
  });

  describe('describeCompiledSql', () => {
    it('gives the statement as each driver receives it', () => {
      const def = define();
      const params = { born_before: '1980-01-01' };
      const [sqlite, postgres, mssql] = dialects.map((d) =>
        describeCompiledSql(compileWith(d.knex, def, params, { page: 2, pageSize: 10 }).builder),
      );
      assert.match(sqlite!.sql, /`marital_status` = \? and .* <= \? order by .* limit \? offset \?$/);
      assert.deepEqual(sqlite!.bindings, ['W', '1980-01-01', 11, 10]);
      assert.match(postgres!.sql, /"marital_status" = \$1 and .* <= \$2 order by .* limit \$3 offset \$4$/);
      assert.deepEqual(postgres!.bindings, ['W', '1980-01-01', 11, 10]);
      assert.match(
        mssql!.sql,
        /\[marital_status\] = @p0 and .* <= @p1 order by .* offset @p2 rows fetch next @p3 rows only$/,
      );
      assert.deepEqual(mssql!.bindings, ['W', '1980-01-01', 10, 11]);
    });
  });
});
