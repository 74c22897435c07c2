import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import { dialectOf } from '../../../warehouse/dialects/index.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { testDatabases } from '../../support/databases.ts';

const [A, B, C] = ['9872000001', '9872000002', '9872000003'];
const EARLIER = '2026-01-01T00:00:00.000Z';
const LATER = '2026-02-01T00:00:00.000Z';

for (const database of testDatabases) {
  describe(`Adding persons to the person key [${database.name}]`, () => {
    let url: string;
    let warehouse: Warehouse;
    const persons = async (knex: Knex = warehouse.knex) =>
      Object.fromEntries(
        (
          await knex('hub_persons')
            .whereIn('national_id', [A, B, C])
            .select<Array<{ national_id: string; first_seen_at: string }>>('national_id', 'first_seen_at')
        ).map((p) => [p.national_id, p.first_seen_at]),
      );

    beforeEach(async () => {
      url = await database.createUrl();
      warehouse = openWarehouse(url);
      await migrateWarehouse(warehouse.knex);
    });
    afterEach(async () => {
      await closeWarehouse(warehouse);
      await database.dropUrl(url);
    });

    it('adds only the persons the key does not hold, and keeps when the others were first seen', async () => {
      const { knex } = warehouse;
      await knex.transaction((trx) => dialectOf(trx).insertMissingPersons(trx, [A], EARLIER));
      await knex.transaction((trx) => dialectOf(trx).insertMissingPersons(trx, [A, B], LATER));
      await knex.transaction((trx) => dialectOf(trx).insertMissingPersons(trx, [], LATER));
      assert.deepEqual(await persons(), { [A]: EARLIER, [B]: LATER });
    });

    // SQLite has one writer at a time: the second transaction would wait for the first's lock.
    if (database.name !== 'sqlite')
      it('lets two transactions that add the same new person at once both commit', async () => {
        // A second warehouse handle: two pools, so that neither transaction waits for a connection.
        const other = openWarehouse(url);
        const first = await warehouse.knex.transaction();
        const second = await other.knex.transaction();
        try {
          await dialectOf(first).insertMissingPersons(first, [A, B], EARLIER);
          // B is the first's, not committed yet: the second waits for it at B.
          const adding = dialectOf(second).insertMissingPersons(second, [B, C], LATER);
          const waited = await Promise.race([
            adding.then(() => false),
            new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 300)),
          ]);
          assert.equal(waited, true, 'the second transaction did not wait for the first one’s person');
          await first.commit();
          await adding;
          await second.commit();
          assert.deepEqual(await persons(), { [A]: EARLIER, [B]: EARLIER, [C]: LATER });
        } finally {
          for (const trx of [first, second])
            if (!trx.isCompleted()) await trx.rollback().catch(() => undefined);
          await closeWarehouse(other);
        }
      });
  });
}
