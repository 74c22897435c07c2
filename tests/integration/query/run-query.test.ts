import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { buildAbility } from '../../../privileges/ability.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { fetchCatalog, type CatalogTable } from '../../../warehouse/catalog.ts';
import { bindParams } from '../../../warehouse/query/bind-params.ts';
import {
  buildQueryPage,
  compileQuery,
  type QueryResultPage,
} from '../../../warehouse/query/compile-query.ts';
import {
  parseQueryDefinition,
  type QueryDefinition,
  type QueryDefinitionInput,
} from '../../../warehouse/query/query-definition.ts';
import {
  deleteQueryRecord,
  fetchQueryRecord,
  fetchQueryRecords,
  saveQueryRecord,
} from '../../../warehouse/query/saved-queries.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { createManualClock, openTestContext } from '../../support/hub-context.ts';
import { productExample } from '../../support/query-product-example.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';
import { isHubError } from '../../support/hub-errors.ts';

const id = (n: number) => validId(n);

// Family names 5 and 4 carry LIKE wildcards: starts_with must match them literally.
const peopleCsv = [
  'NATNO,FIRST,FAMILY,MARITAL,DOB,HOUSEHOLD',
  `${id(1)},محمد,أحمد,M,01/03/1950,10`,
  `${id(2)},فاطمة,علي,W,15/07/1948,10`,
  `${id(3)},سارة,يوسف,W,31/12/1985,11`,
  `${id(4)},عمر,[حسن],S,01/01/2001,12`,
  `${id(5)},ليلى,نور_الدين,D,20/05/1979,`,
  `${id(6)},يوسف,نورالدين,M,06/06/1970,13`,
].join('\n');

const vehiclesCsv = [
  'OWNER,PLATE,KIND,YEAR,ENGINE,INSURED',
  `${id(1)},10-1001,سيارة,2015,1.6,1`,
  `${id(1)},10-1002,شاحنة,2008,4.0,0`,
  `${id(3)},20-2001,سيارة,2020,1.2,1`,
  `${id(9)},30-3001,دراجة,2018,0.25,0`,
].join('\n');

const peopleConnector = (file: string) => ({
  name: 'cspd-personal-info',
  entity: 'CSPD',
  target: { table: 'cspd_personal_info' },
  source: { kind: 'csv', path: file },
  columns: {
    national_id: { from: 'NATNO', required: true },
    first_name: { from: 'FIRST' },
    family_name: { from: 'FAMILY' },
    marital_status: { from: 'MARITAL' },
    birth_date: { from: 'DOB', type: 'date', format: 'DD/MM/YYYY' },
    household_id: { from: 'HOUSEHOLD', type: 'integer' },
  },
});

const vehiclesConnector = (file: string) => ({
  name: 'dvld-vehicles',
  entity: 'DVLD',
  target: { table: 'dvld_vehicles', key: ['registration_number'] },
  source: { kind: 'csv', path: file },
  columns: {
    national_id: { from: 'OWNER', required: true },
    registration_number: { from: 'PLATE', required: true },
    vehicle_type: { from: 'KIND' },
    model_year: { from: 'YEAR', type: 'integer' },
    engine_litres: { from: 'ENGINE', type: 'number' },
    insured: { from: 'INSURED', type: 'boolean' },
  },
});

const ATTACKS = [
  "x' OR '1'='1",
  "'; DROP TABLE cspd_personal_info;--",
  "1'); DELETE FROM dvld_vehicles; --",
  '%',
  '\\',
];

describeEachDatabase('Query engine on real data', (db) => {
  let dir: string;
  let ctx: AppContext;
  let catalog: CatalogTable[];

  const define = (input: Partial<QueryDefinitionInput>): QueryDefinition =>
    parseQueryDefinition({
      name: 'test-query',
      entity: 'NAF',
      tables: ['cspd_personal_info'],
      columns: ['cspd_personal_info.national_id'],
      ...input,
    });

  async function run(
    def: QueryDefinition,
    supplied: unknown = {},
    page = { page: 1, pageSize: 100 },
  ): Promise<QueryResultPage> {
    // An entity owning both tables: these tests are about results, the grants are tested elsewhere.
    const ability = buildAbility(
      [],
      catalog.map((t) => t.name),
    );
    const compiled = compileQuery(ctx.knex, def, bindParams(def, supplied), page, catalog, ability);
    return buildQueryPage(compiled, await compiled.builder);
  }

  /** The first selected column of every row. */
  const firstColumn = async (def: QueryDefinition, supplied: unknown = {}) =>
    (await run(def, supplied)).rows.map((r) => r[def.columns[0]!]);

  const rowCounts = async () => {
    const counts: Record<string, number> = {};
    for (const table of ['cspd_personal_info', 'dvld_vehicles', 'hub_queries', 'hub_tables']) {
      const row = await ctx.knex(table).count({ n: '*' }).first<{ n: number | string }>();
      counts[table] = Number(row?.n);
    }
    return counts;
  };

  before(async () => {
    dir = await createTempDir('hub-query-');
    await writeFile(path.join(dir, 'people.csv'), peopleCsv);
    await writeFile(path.join(dir, 'vehicles.csv'), vehiclesCsv);
    ctx = openTestContext(db.url(), dir);
    await writeDefinition(
      ctx.config.connectorsDir,
      'cspd-personal-info',
      peopleConnector(path.join(dir, 'people.csv')),
    );
    await writeDefinition(
      ctx.config.connectorsDir,
      'dvld-vehicles',
      vehiclesConnector(path.join(dir, 'vehicles.csv')),
    );
    await prepareWarehouse(ctx);
    for (const connector of await readConnectorDefinitions(ctx.config.connectorsDir)) {
      const summary = await runConnector(connector, ctx, { full: true });
      assert.equal(summary.status, 'succeeded', summary.error ?? '');
      assert.equal(summary.rejected, 0);
    }
    catalog = await fetchCatalog(ctx.knex);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the PRODUCT.md example: widows born before a date, with their vehicles', async () => {
    const def = define(productExample);
    assert.deepEqual(await run(def, { born_before: '1990-01-01' }), {
      columns: [
        'cspd_personal_info.national_id',
        'cspd_personal_info.first_name',
        'dvld_vehicles.vehicle_type',
      ],
      rows: [
        {
          'cspd_personal_info.national_id': id(3),
          'cspd_personal_info.first_name': 'سارة',
          'dvld_vehicles.vehicle_type': 'سيارة',
        },
      ],
      has_more: false,
      truncated: false,
    });
  });

  it('an inner join keeps people with vehicles; a left join keeps everyone, with nulls', async () => {
    const columns = [
      'cspd_personal_info.national_id',
      'dvld_vehicles.registration_number',
      'dvld_vehicles.model_year',
      'dvld_vehicles.insured',
    ];
    const pairs = (page: QueryResultPage) =>
      page.rows.map((r) => [r[columns[0]!], r[columns[1]!], r[columns[2]!], r[columns[3]!]]);
    const inner = await run(define({ tables: ['cspd_personal_info', 'dvld_vehicles'], columns }));
    assert.deepEqual(pairs(inner), [
      [id(1), '10-1001', 2015, true],
      [id(1), '10-1002', 2008, false],
      [id(3), '20-2001', 2020, true],
    ]);
    const left = await run(
      define({ tables: ['cspd_personal_info', 'dvld_vehicles'], join: 'left', columns }),
    );
    assert.deepEqual(pairs(left), [
      [id(1), '10-1001', 2015, true],
      [id(1), '10-1002', 2008, false],
      [id(2), null, null, null],
      [id(3), '20-2001', 2020, true],
      [id(4), null, null, null],
      [id(5), null, null, null],
      [id(6), null, null, null],
    ]);
  });

  it('applies every operator to real rows', async () => {
    const people = (n: number[]) => n.map(id);
    const cases: Array<[QueryDefinitionInput['conditions'], string[]]> = [
      [[{ column: 'cspd_personal_info.marital_status', op: '=', value: 'W' }], people([2, 3])],
      [[{ column: 'cspd_personal_info.marital_status', op: '!=', value: 'W' }], people([1, 4, 5, 6])],
      [[{ column: 'cspd_personal_info.birth_date', op: '<', value: '1950-03-01' }], people([2])],
      [[{ column: 'cspd_personal_info.birth_date', op: '<=', value: '1950-03-01' }], people([1, 2])],
      [[{ column: 'cspd_personal_info.household_id', op: '>', value: 11 }], people([4, 6])],
      [[{ column: 'cspd_personal_info.household_id', op: '>=', value: 11 }], people([3, 4, 6])],
      [[{ column: 'cspd_personal_info.marital_status', op: 'in', value: ['S', 'D'] }], people([4, 5])],
      [[{ column: 'cspd_personal_info.marital_status', op: 'not_in', value: ['M', 'W'] }], people([4, 5])],
      [[{ column: 'cspd_personal_info.first_name', op: 'like', value: '%ة' }], people([2, 3])],
      [
        // like keeps its wildcards: _ stands for the ا of نورالدين; \_ is a literal underscore.
        [{ column: 'cspd_personal_info.family_name', op: 'like', value: 'نور_لدين' }],
        people([6]),
      ],
      [[{ column: 'cspd_personal_info.family_name', op: 'like', value: 'نور\\_%' }], people([5])],
      [[{ column: 'cspd_personal_info.family_name', op: 'like', value: 'نور%' }], people([5, 6])],
      [[{ column: 'cspd_personal_info.family_name', op: 'starts_with', value: 'نور_' }], people([5])],
      [[{ column: 'cspd_personal_info.family_name', op: 'starts_with', value: '[ح' }], people([4])],
      [[{ column: 'cspd_personal_info.family_name', op: 'starts_with', value: '%' }], []],
      [
        [{ column: 'cspd_personal_info.birth_date', op: 'between', value: ['1970-01-01', '1985-12-31'] }],
        people([3, 5, 6]),
      ],
      [[{ column: 'cspd_personal_info.household_id', op: 'is_null' }], people([5])],
      [[{ column: 'cspd_personal_info.household_id', op: 'is_not_null' }], people([1, 2, 3, 4, 6])],
    ];
    for (const [conditions, expected] of cases) {
      assert.deepEqual(await firstColumn(define({ conditions })), expected, JSON.stringify(conditions));
    }
  });

  it('compares booleans and fractional numbers in every dialect', async () => {
    const plates = (conditions: QueryDefinitionInput['conditions']) =>
      firstColumn(
        define({ tables: ['dvld_vehicles'], columns: ['dvld_vehicles.registration_number'], conditions }),
      );
    assert.deepEqual(await plates([{ column: 'dvld_vehicles.insured', op: '=', value: true }]), [
      '10-1001',
      '20-2001',
    ]);
    assert.deepEqual(await plates([{ column: 'dvld_vehicles.insured', op: '!=', value: true }]), [
      '10-1002',
      '30-3001',
    ]);
    assert.deepEqual(await plates([{ column: 'dvld_vehicles.engine_litres', op: '>', value: 1.5 }]), [
      '10-1001',
      '10-1002',
    ]);
    assert.deepEqual(
      await plates([{ column: 'dvld_vehicles.engine_litres', op: 'between', value: [0.2, 1.2] }]),
      ['20-2001', '30-3001'],
    );
  });

  it('compares dates with a date parameter, and drops the condition of an optional one left out', async () => {
    const def = define({
      conditions: [{ column: 'cspd_personal_info.birth_date', op: '>=', param: 'born_after' }],
      params: { born_after: { type: 'date' } },
    });
    assert.deepEqual(await firstColumn(def, { born_after: '1980-01-01' }), [id(3), id(4)]);
    assert.deepEqual(await firstColumn(def, { born_after: '1985-12-31' }), [id(3), id(4)]);
    assert.deepEqual(await firstColumn(def, { born_after: '1986-01-01' }), [id(4)]);
    assert.equal((await firstColumn(def, {})).length, 6);
    await assert.rejects(run(def, { born_after: '1980-02-30' }), isHubError('invalid_parameter'));
  });

  it('pages with has_more; the limit is the total over all pages, and a cut-off says truncated', async () => {
    const def = define({ columns: ['cspd_personal_info.national_id', 'cspd_personal_info.household_id'] });
    const page = async (d: QueryDefinition, n: number, pageSize = 2) => {
      const result = await run(d, {}, { page: n, pageSize });
      return {
        ids: result.rows.map((r) => r['cspd_personal_info.national_id']),
        has_more: result.has_more,
        truncated: result.truncated,
      };
    };
    const more = { has_more: true, truncated: false };
    const end = { has_more: false, truncated: false };
    const cut = { has_more: false, truncated: true };
    assert.deepEqual(await page(def, 1), { ids: [id(1), id(2)], ...more });
    assert.deepEqual(await page(def, 2), { ids: [id(3), id(4)], ...more });
    assert.deepEqual(await page(def, 3), { ids: [id(5), id(6)], ...end });
    assert.deepEqual(await page(def, 4), { ids: [], ...end });
    const limited = define({ columns: ['cspd_personal_info.national_id'], limit: 5 });
    assert.deepEqual(await page(limited, 2), { ids: [id(3), id(4)], ...more });
    assert.deepEqual(await page(limited, 3), { ids: [id(5)], ...cut });
    assert.deepEqual(await page(limited, 4), { ids: [], ...cut });
    assert.deepEqual(await page(limited, 1, 100), { ids: [1, 2, 3, 4, 5].map(id), ...cut });
    // Six rows and a limit of six: nothing was cut off.
    const exact = define({ columns: ['cspd_personal_info.national_id'], limit: 6 });
    assert.deepEqual(await page(exact, 2, 3), { ids: [4, 5, 6].map(id), ...end });
    assert.deepEqual(await page(exact, 1, 6), { ids: [1, 2, 3, 4, 5, 6].map(id), ...end });
    assert.deepEqual(await page(exact, 3, 3), { ids: [], ...end });
    const typed = await run(def, {}, { page: 1, pageSize: 1 });
    assert.deepEqual(typed.rows, [
      { 'cspd_personal_info.national_id': id(1), 'cspd_personal_info.household_id': 10 },
    ]);
  });

  it('finds nothing for injection values and leaves every table as it was', async () => {
    const before = await rowCounts();
    const def = define({
      tables: ['cspd_personal_info', 'dvld_vehicles'],
      join: 'left',
      conditions: [{ column: 'cspd_personal_info.first_name', op: '=', param: 'name' }],
      params: { name: { type: 'string', required: true } },
    });
    for (const attack of ATTACKS) {
      assert.deepEqual(await firstColumn(def, { name: attack }), [], attack);
      for (const op of ['=', 'like', 'starts_with'] as const) {
        const literal = define({
          conditions: [{ column: 'cspd_personal_info.family_name', op, value: attack }],
        });
        if (op === 'like' && attack.endsWith('\\')) {
          // A pattern ending in a lone escape character would be a driver error on PostgreSQL: refused first.
          await assert.rejects(firstColumn(literal), isHubError('invalid_request'));
          continue;
        }
        const expected = op === 'like' && attack === '%' ? 6 : 0;
        assert.equal((await firstColumn(literal)).length, expected, `${op} ${attack}`);
      }
      const listed = define({
        conditions: [{ column: 'cspd_personal_info.marital_status', op: 'in', value: [attack] }],
      });
      assert.deepEqual(await firstColumn(listed), [], attack);
    }
    assert.deepEqual(await rowCounts(), before);
  });

  it('saves, replaces, lists, reads back and deletes saved queries', async () => {
    const clock = createManualClock('2026-03-01T10:00:00.000Z');
    const first = define({
      name: 'people-by-status',
      description: 'حسب الحالة',
      conditions: [{ column: 'cspd_personal_info.marital_status', op: '=', value: 'W' }],
    });
    await saveQueryRecord(ctx.knex, first, 'naf-admin', clock);
    assert.deepEqual(await fetchQueryRecord(ctx.knex, 'people-by-status'), first);
    assert.equal(await fetchQueryRecord(ctx.knex, 'no-such-query'), null);

    clock.advance(60_000);
    const replaced = { ...first, limit: 5 };
    await saveQueryRecord(ctx.knex, replaced, 'naf-admin-2', clock);
    await saveQueryRecord(ctx.knex, { ...first, name: 'moe-query', entity: 'MOE' }, 'moe-admin', clock);
    const naf = await fetchQueryRecords(ctx.knex, 'NAF');
    assert.deepEqual(naf, [
      { definition: replaced, savedBy: 'naf-admin-2', savedAt: '2026-03-01T10:01:00.000Z' },
    ]);
    assert.deepEqual(
      (await fetchQueryRecords(ctx.knex)).map((r) => r.definition.name),
      ['moe-query', 'people-by-status'],
    );

    await assert.rejects(
      saveQueryRecord(ctx.knex, { ...first, entity: 'MOE' }, 'moe-admin', clock),
      isHubError('query_name_taken'),
    );
    assert.deepEqual(await fetchQueryRecord(ctx.knex, 'people-by-status'), replaced);

    assert.equal(await deleteQueryRecord(ctx.knex, 'people-by-status'), true);
    assert.equal(await deleteQueryRecord(ctx.knex, 'people-by-status'), false);
    assert.equal(await fetchQueryRecord(ctx.knex, 'people-by-status'), null);
    assert.equal(await deleteQueryRecord(ctx.knex, 'moe-query'), true);
  });
});
