import assert from 'node:assert/strict';
import type { CatalogTable } from '../../../warehouse/catalog.ts';
import { buildRegistryCopySpec, mapDeclaredType } from '../../../warehouse/copy/registry-copy-spec.ts';
import { sortByReferences } from '../../../warehouse/copy/sort-by-references.ts';

const label = { en: 'x', ar: 'س' };
const vehicles: CatalogTable = {
  name: 'veh_vehicles',
  entity: 'VEH',
  connector: 'veh-vehicles',
  label,
  nationalIdColumn: 'national_id',
  key: ['plate'],
  rowCount: 0,
  loadedAt: null,
  columns: [
    { name: 'national_id', type: 'string', label },
    { name: 'plate', type: 'string', label },
    { name: 'seen_at', type: 'datetime', label },
  ],
};

describe('copying a registry table: its target declaration', () => {
  it('keeps the source column order, the catalog types, the string sizes, and columns a definition dropped', () => {
    const spec = buildRegistryCopySpec(vehicles, [
      { name: 'national_id', declaredType: 'varchar(32)', maxLength: 32 },
      { name: 'plate', declaredType: 'character varying', maxLength: 20 },
      { name: 'old_colour', declaredType: 'varchar(40)', maxLength: 40 },
      { name: 'seen_at', declaredType: 'varchar(19)', maxLength: 19 },
      { name: 'insured', declaredType: 'boolean', maxLength: null },
    ]);
    assert.deepEqual(spec, {
      table: 'veh_vehicles',
      nationalIdColumn: 'national_id',
      key: ['plate'],
      columns: [
        { name: 'national_id', type: 'string', length: 32 },
        { name: 'plate', type: 'string', length: 20 },
        { name: 'old_colour', type: 'string', length: 40 },
        { name: 'seen_at', type: 'datetime', length: undefined },
        { name: 'insured', type: 'boolean', length: undefined },
      ],
    });
  });

  it('reads the types SQLite and PostgreSQL declare for each hub column type', () => {
    const declared: Array<[string, string]> = [
      ['varchar(255)', 'string'],
      ['character varying', 'string'],
      ['text', 'text'],
      ['bigint', 'integer'],
      ['float', 'number'],
      ['double precision', 'number'],
      ['boolean', 'boolean'],
      ['date', 'date'],
      ['blob', 'text'],
    ];
    assert.deepEqual(
      declared.map(([type]) => [type, mapDeclaredType(type)]),
      declared,
    );
  });

  it('orders tables so that a referenced table comes before the tables that refer to it', () => {
    const order = sortByReferences(
      ['hub_columns', 'hub_audit', 'hub_tables', 'hub_entities'],
      [
        { table: 'hub_columns', references: 'hub_tables' },
        { table: 'hub_tables', references: 'hub_entities' },
        { table: 'hub_tables', references: 'hub_tables' },
      ],
    );
    assert.deepEqual(order, ['hub_audit', 'hub_entities', 'hub_tables', 'hub_columns']);
  });
});
