import assert from 'node:assert/strict';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import { dialectOf, type BulkTarget } from '../../../warehouse/dialects/index.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { postgresCopy } from '../../../warehouse/copy/postgres-copy.ts';
import { describeEachDatabase } from '../../support/databases.ts';

const BATCHES = 30;
const ROWS = 2000;

describeEachDatabase('a bulk load that outruns its database', (db) => {
  let warehouse: Warehouse;
  const target: BulkTarget = { table: 'reg_cards', columns: ['national_id', 'holder'], key: ['national_id'] };
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);

  before(async () => {
    warehouse = openWarehouse(db.url());
    await migrateWarehouse(warehouse.knex);
    await warehouse.knex.schema.createTable('reg_cards', (t) => {
      t.string('national_id', 32);
      t.text('holder');
    });
    if (db.name === 'postgres') {
      // A server slower than the client: every 500th row or so makes it wait 20 ms, so the
      // socket fills and the COPY stream asks the writer again and again to wait for 'drain'.
      await warehouse.knex.raw(`CREATE FUNCTION slow_card() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF hashtext(NEW.national_id) % 500 = 0 THEN PERFORM pg_sleep(0.02); END IF;
          RETURN NEW;
        END $$`);
      await warehouse.knex.raw(
        'CREATE TRIGGER slow_card BEFORE INSERT ON reg_cards FOR EACH ROW EXECUTE FUNCTION slow_card()',
      );
    }
    process.on('warning', onWarning);
  });

  after(async () => {
    process.off('warning', onWarning);
    await closeWarehouse(warehouse);
  });

  const cardRows = (batch: number) =>
    Array.from({ length: ROWS }, (_, i) => [`ID${batch * ROWS + i}`, `holder ${'x'.repeat(1000)} ${i}`]);
  const leakWarnings = () =>
    warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message);
  const countCards = async () =>
    Number((await warehouse.knex('reg_cards').count({ n: '*' }).first<{ n: number | string }>())?.n);

  it('waits for the database batch after batch without piling up listeners, and writes every row', async () => {
    const writer = await dialectOf(warehouse.knex).openBulkWriter(warehouse.knex, target);
    for (let batch = 0; batch < BATCHES; batch++) await writer.write(cardRows(batch));
    await writer.close();
    // Node emits its warnings on the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(leakWarnings(), []);
    assert.equal(await countCards(), BATCHES * ROWS);
  });

  if (db.name === 'postgres') {
    it('copies a table to another hub the same way (hub copy)', async () => {
      await warehouse.knex('reg_cards').delete();
      await warehouse.knex.transaction(async (trx) => {
        const writer = await postgresCopy.openRowWriter(trx, 'reg_cards', target.columns);
        for (let batch = 0; batch < BATCHES; batch++) await writer.write(cardRows(batch));
        await writer.close();
      });
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(leakWarnings(), []);
      assert.equal(await countCards(), BATCHES * ROWS);
    });
  }
});
