import assert from 'node:assert/strict';
import { printWarehouseSummary } from '../../../server/main.ts';
import { PERSON, startApiHub, type ApiHub } from '../../support/api-hub.ts';
import { describeEachDatabase } from '../../support/databases.ts';

const summaryOf = async (hub: ApiHub): Promise<string[]> => {
  const lines: string[] = [];
  await printWarehouseSummary(hub.ctx, null, hub.baseUrl, (line) => lines.push(line));
  return lines;
};

describeEachDatabase('The warehouse summary a starting hub prints', (db) => {
  let hub: ApiHub;

  before(async () => {
    hub = await startApiHub(db.url());
  });

  after(async () => {
    await hub?.close();
  });

  it('counts the persons of the key and lists each registry table with its rows', async () => {
    const persons = Object.keys(PERSON).length;
    const lines = await summaryOf(hub);
    assert.match(lines[0]!, /^Warehouse: \d+ persons in 3 registry tables$/);
    assert.ok(Number(/(\d+) persons/.exec(lines[0]!)?.[1]) >= persons, lines[0]);
    for (const table of ['reg_people', 'reg_households', 'veh_vehicles'])
      assert.ok(
        lines.some((line) => new RegExp(`^  ${table}\\s+\\d+ rows`).test(line)),
        `${table} in ${lines.join('\n')}`,
      );
  });

  if (db.name === 'postgres')
    it('does not wait for a load that holds the person key: it says so and lists the tables', async () => {
      // Another connection, as a first load filling an empty key holds it (fillWithoutPrimaryKey).
      const holder = await hub.ctx.knex.transaction();
      try {
        await holder.raw('LOCK TABLE hub_persons IN ACCESS EXCLUSIVE MODE');
        const lines = await summaryOf(hub);
        assert.equal(lines[0], 'Warehouse: 3 registry tables, the person key being filled by a load');
        assert.equal(lines.length, 4, lines.join('\n'));
      } finally {
        await holder.rollback();
      }
      assert.match((await summaryOf(hub))[0]!, /^Warehouse: \d+ persons in 3 registry tables$/);
    });
});
