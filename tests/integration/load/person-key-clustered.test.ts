import assert from 'node:assert/strict';
import { closeWarehouse, openWarehouse } from '../../../warehouse/db.ts';
import * as hubTables from '../../../warehouse/migrations/001-hub-tables.ts';
import * as personKeyClustered from '../../../warehouse/migrations/015-person-key-clustered.ts';
import { testDatabases } from '../../support/databases.ts';

const PERSONS = [
  { national_id: '9871000001', first_seen_at: '2026-01-01T00:00:00.000Z' },
  { national_id: '9871000002', first_seen_at: '2026-01-02T00:00:00.000Z' },
];
const MEMBERSHIPS = [
  { national_id: '9871000001', table_name: 'cspd_personal_info' },
  { national_id: '9871000001', table_name: 'dvld_vehicles' },
  { national_id: '9871000002', table_name: 'cspd_personal_info' },
];

for (const database of testDatabases) {
  describe(`Migration 015 keeps the person key, clustered by its primary key on SQLite [${database.name}]`, () => {
    it('keeps every person and membership, the uniqueness of both and the national-ID index, and goes back down', async () => {
      const url = await database.createUrl();
      const warehouse = openWarehouse(url);
      const { knex } = warehouse;
      const persons = () => knex('hub_persons').orderBy('national_id').select('national_id', 'first_seen_at');
      const memberships = () =>
        knex('hub_person_tables').orderBy(['national_id', 'table_name']).select('national_id', 'table_name');
      /** Which tables SQLite stores without rowid (none on other databases). */
      const withoutRowid = async () =>
        database.name === 'sqlite'
          ? (
              await knex.raw<Array<{ name: string }>>(
                "SELECT name FROM pragma_table_list WHERE wr = 1 AND name LIKE 'hub_person%' ORDER BY name",
              )
            ).map((t) => t.name)
          : [];
      try {
        await hubTables.up(knex);
        await knex('hub_persons').insert(PERSONS);
        await knex('hub_person_tables').insert(MEMBERSHIPS);

        await knex.transaction((trx) => personKeyClustered.up(trx));
        assert.deepEqual(await persons(), PERSONS);
        assert.deepEqual(await memberships(), MEMBERSHIPS);
        assert.deepEqual(
          await withoutRowid(),
          database.name === 'sqlite' ? ['hub_person_tables', 'hub_persons'] : [],
        );
        await assert.rejects(knex('hub_persons').insert(PERSONS[0]!));
        await assert.rejects(knex('hub_person_tables').insert(MEMBERSHIPS[0]!));
        if (database.name === 'sqlite') {
          const plan = await knex.raw<Array<{ detail: string }>>(
            "EXPLAIN QUERY PLAN SELECT table_name FROM hub_person_tables WHERE national_id = '9871000001'",
          );
          assert.match(plan.map((p) => p.detail).join('\n'), /hub_person_tables_national_id_index/);
        }

        await knex.transaction((trx) => personKeyClustered.down(trx));
        assert.deepEqual(await persons(), PERSONS);
        assert.deepEqual(await memberships(), MEMBERSHIPS);
        assert.deepEqual(await withoutRowid(), []);
      } finally {
        await closeWarehouse(warehouse);
        await database.dropUrl(url);
      }
    });
  });
}
