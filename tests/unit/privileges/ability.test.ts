import assert from 'node:assert/strict';
import { buildAbility } from '../../../privileges/ability.ts';
import { authorizeRead } from '../../../privileges/authorize-query.ts';
import { permittedColumns, permittedPersonColumns } from '../../../privileges/permitted-columns.ts';
import type { CatalogTable } from '../../../warehouse/catalog.ts';
import { HubError } from '../../../warehouse/core/errors.ts';

function buildTable(name: string, entity: string, columns: string[]): CatalogTable {
  return {
    name,
    entity,
    connector: name.replaceAll('_', '-'),
    label: { en: name, ar: name },
    nationalIdColumn: 'national_id',
    key: ['national_id'],
    rowCount: 0,
    loadedAt: null,
    columns: columns.map((c) => ({ name: c, type: 'string', label: { en: c, ar: c } })),
  };
}

const insured = buildTable('ssc_insured', 'SSC', [
  'national_id',
  'employer_name',
  'monthly_salary',
  'start_date',
]);
const vehicles = buildTable('dvld_vehicles', 'DVLD', ['national_id', 'registration_number', 'vehicle_type']);
const households = buildTable('naf_households', 'NAF', ['national_id', 'household_id', 'poverty_score']);

describe('privileges: abilities from grants', () => {
  it('a whole-table grant permits every catalog column, in catalog order', () => {
    const ability = buildAbility([{ table: 'ssc_insured', column: null }], []);
    assert.deepEqual(permittedColumns(ability, insured), [
      'national_id',
      'employer_name',
      'monthly_salary',
      'start_date',
    ]);
    assert.equal(ability.can('read', 'ssc_insured'), true);
  });

  it('column grants permit exactly those columns, in catalog order whatever the grant order', () => {
    const ability = buildAbility(
      [
        { table: 'ssc_insured', column: 'monthly_salary' },
        { table: 'ssc_insured', column: 'national_id' },
      ],
      [],
    );
    assert.deepEqual(permittedColumns(ability, insured), ['national_id', 'monthly_salary']);
    assert.equal(ability.can('read', 'ssc_insured', 'employer_name'), false);
  });

  it('a whole-table grant wins over column grants on the same table', () => {
    const ability = buildAbility(
      [
        { table: 'ssc_insured', column: 'national_id' },
        { table: 'ssc_insured', column: null },
      ],
      [],
    );
    assert.deepEqual(
      permittedColumns(ability, insured),
      insured.columns.map((c) => c.name),
    );
  });

  it('an entity reads its own tables without a grant', () => {
    const ability = buildAbility([], ['naf_households']);
    assert.deepEqual(permittedColumns(ability, households), ['national_id', 'household_id', 'poverty_score']);
  });

  it('a table without a grant permits no column', () => {
    const ability = buildAbility([{ table: 'ssc_insured', column: 'national_id' }], []);
    assert.deepEqual(permittedColumns(ability, vehicles), []);
    assert.equal(ability.can('read', 'dvld_vehicles'), false);
  });

  it('a granted column no longer in the catalog is not permitted', () => {
    const ability = buildAbility(
      [
        { table: 'ssc_insured', column: 'old_column' },
        { table: 'ssc_insured', column: 'national_id' },
      ],
      [],
    );
    assert.deepEqual(permittedColumns(ability, insured), ['national_id']);
  });
});

describe('privileges: the person lookup reads the national ID column', () => {
  it('a table whose national ID column is not readable takes no part in the lookup', () => {
    const ability = buildAbility(
      [
        { table: 'ssc_insured', column: 'monthly_salary' },
        { table: 'dvld_vehicles', column: 'national_id' },
        { table: 'dvld_vehicles', column: 'vehicle_type' },
      ],
      ['naf_households'],
    );
    assert.deepEqual(permittedColumns(ability, insured), ['monthly_salary']);
    assert.deepEqual(permittedPersonColumns(ability, insured), []);
    assert.deepEqual(permittedPersonColumns(ability, vehicles), ['national_id', 'vehicle_type']);
    assert.deepEqual(permittedPersonColumns(ability, households), [
      'national_id',
      'household_id',
      'poverty_score',
    ]);
  });
});

describe('privileges: authorizing explicit reads', () => {
  const ability = buildAbility(
    [
      { table: 'ssc_insured', column: 'national_id' },
      { table: 'ssc_insured', column: 'monthly_salary' },
      { table: 'dvld_vehicles', column: null },
    ],
    ['naf_households'],
  );
  const reads = (tables: string[], columns: Array<[string, string]>) => ({
    tables,
    columns: columns.map(([table, column]) => ({ table, column })),
  });

  it('passes when every table and column is granted or owned', () => {
    authorizeRead(
      ability,
      reads(
        ['ssc_insured', 'dvld_vehicles', 'naf_households'],
        [
          ['ssc_insured', 'monthly_salary'],
          ['dvld_vehicles', 'vehicle_type'],
          ['naf_households', 'poverty_score'],
        ],
      ),
    );
  });

  it('throws one 403 column_not_granted naming every denied column, sorted and once each', () => {
    assert.throws(
      () =>
        authorizeRead(
          ability,
          reads(
            ['ssc_insured'],
            [
              ['ssc_insured', 'start_date'],
              ['ssc_insured', 'national_id'],
              ['ssc_insured', 'employer_name'],
              ['ssc_insured', 'start_date'],
            ],
          ),
        ),
      (err: unknown) => {
        assert.ok(err instanceof HubError);
        assert.equal(err.code, 'column_not_granted');
        assert.equal(err.status, 403);
        const denied = ['ssc_insured.employer_name', 'ssc_insured.start_date'];
        assert.deepEqual(err.details, { denied, tables: [], columns: denied });
        assert.equal(err.message, `not granted: ${denied.join(', ')}`);
        return true;
      },
    );
  });

  it('a table with no grant at all is named once, as a table, even when no column of it is read', () => {
    assert.throws(
      () =>
        authorizeRead(
          ability,
          reads(
            ['ssc_insured', 'cspd_personal_info', 'moe_students'],
            [
              ['cspd_personal_info', 'mother_name'],
              ['cspd_personal_info', 'national_id'],
              ['ssc_insured', 'employer_name'],
            ],
          ),
        ),
      (err: unknown) => {
        assert.ok(err instanceof HubError);
        assert.equal(err.code, 'table_not_granted');
        assert.equal(err.status, 403);
        assert.deepEqual(err.details, {
          denied: ['cspd_personal_info', 'moe_students', 'ssc_insured.employer_name'],
          tables: ['cspd_personal_info', 'moe_students'],
          columns: ['ssc_insured.employer_name'],
        });
        assert.equal(
          err.message,
          'not granted: table cspd_personal_info, table moe_students, ssc_insured.employer_name',
        );
        return true;
      },
    );
  });
});
