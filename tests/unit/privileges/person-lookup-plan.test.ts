import assert from 'node:assert/strict';
import knexFactory from 'knex';
import { buildAbility } from '../../../privileges/ability.ts';
import { fetchPersonLookupPlan } from '../../../server/services/person-lookup-plan.ts';
import type { CatalogTable } from '../../../warehouse/catalog.ts';

// Compiled only: neither toSQL() nor the plan opens a connection.
const CLIENTS = { sqlite: 'better-sqlite3', postgres: 'pg', mssql: 'mssql' } as const;
/** The parameters each database takes in one statement. */
const PARAMETER_LIMITS = { sqlite: 32_766, postgres: 65_535, mssql: 2_100 } as const;

const label = { en: 'x', ar: 'x' };

function registryTable(name: string): CatalogTable {
  return {
    name,
    entity: 'REG',
    connector: name,
    label,
    nationalIdColumn: 'national_id',
    key: ['id'],
    rowCount: 0,
    loadedAt: null,
    columns: ['id', 'national_id', 'secret'].map((column) => ({
      name: column,
      type: 'text' as const,
      label,
    })),
  };
}

const catalog = Array.from({ length: 24 }, (_, i) => registryTable(`reg_t${String(i).padStart(2, '0')}`));
const countPlaceholders = (sql: string) => (sql.match(/\?/g) ?? []).length;

describe('the person lookup plan: which readable tables hold a person', () => {
  for (const [dialect, client] of Object.entries(CLIENTS) as Array<[keyof typeof CLIENTS, string]>) {
    const reader = knexFactory({ client, useNullAsDefault: true });

    it(`probes only the tables the caller may read, one branch each [${dialect}]`, () => {
      const ability = buildAbility(
        [
          { table: 'reg_t03', column: 'national_id' },
          { table: 'reg_t07', column: null },
        ],
        [],
      );
      const plan = fetchPersonLookupPlan(reader, ability, catalog);
      const sql = plan.holdingSql(4);
      assert.deepEqual(
        plan.tables.map((t) => t.table.name),
        ['reg_t03', 'reg_t07'],
      );
      assert.equal(sql.match(/union all/gi)?.length, 1);
      for (const table of catalog.map((t) => t.name))
        assert.equal(sql.includes(table), table === 'reg_t03' || table === 'reg_t07', table);
      assert.equal(countPlaceholders(sql), 4 * 2);
    });

    it(`keeps a whole batch within the parameters one statement takes, however many tables are readable [${dialect}]`, () => {
      const ability = buildAbility(
        [],
        catalog.map((t) => t.name),
      );
      const plan = fetchPersonLookupPlan(reader, ability, catalog);
      const perStatement = plan.holdingIdsPerStatement;
      assert.ok(perStatement >= 1);
      // A batch of 100 IDs is read in statements of at most this many IDs, padded to a power of two.
      assert.equal(perStatement & (perStatement - 1), 0, 'a power of two');
      const sql = plan.holdingSql(Math.min(128, perStatement));
      assert.ok(countPlaceholders(sql) <= PARAMETER_LIMITS[dialect], `${countPlaceholders(sql)} parameters`);
      if (dialect === 'mssql') assert.ok(perStatement < 128, 'SQL Server splits a batch over 24 tables');
    });
  }
});
