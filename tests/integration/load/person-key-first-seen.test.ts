import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { createManualClock, openTestContext } from '../../support/hub-context.ts';
import { idRegistry, validId } from '../../support/registry-fixture.ts';

const [X, Y, Z] = [validId(611), validId(612), validId(613)];
const DAY = 86_400_000;

describeEachDatabase(
  'the person key remembers when each person was first seen, across registries and reloads',
  (db) => {
    let dir: string;
    let ctx: AppContext;
    const clock = createManualClock('2026-03-01T00:00:00.000Z');

    const setSource = (name: string, ids: string[]) => idRegistry.setIds(dir, name, ids);
    const runFull = async (name: string) => {
      const def = (await readConnectorDefinitions(ctx.config.connectorsDir)).find((d) => d.name === name)!;
      const summary = await runConnector(def, ctx, { full: true });
      assert.equal(summary.status, 'succeeded', summary.error ?? '');
    };
    const persons = async () =>
      Object.fromEntries(
        (
          await ctx
            .knex('hub_persons')
            .whereIn('national_id', [X, Y, Z])
            .select<Array<{ national_id: string; first_seen_at: string }>>('national_id', 'first_seen_at')
        ).map((p) => [p.national_id, p.first_seen_at]),
      );
    const holders = async (id: string) =>
      ctx.knex('hub_person_tables').where({ national_id: id }).orderBy('table_name').pluck('table_name');

    before(async () => {
      dir = await createTempDir('hub-first-seen-');
      ctx = openTestContext(db.url(), dir, { clock });
      await idRegistry.define(ctx.config.connectorsDir, dir, 'reg-civil', 'reg_civil', ['national_id']);
      await idRegistry.define(ctx.config.connectorsDir, dir, 'reg-cars', 'reg_cars', ['id']);
      await prepareWarehouse(ctx);
    });

    after(async () => {
      await closeContext(ctx);
      await rm(dir, { recursive: true, force: true });
    });

    it('keeps the first day for a person another registry or an earlier load already had, and never forgets one', async () => {
      setSource('reg-civil', [X, Y]);
      await runFull('reg-civil');
      const day1 = clock.now().toISOString();
      assert.deepEqual(await persons(), { [X]: day1, [Y]: day1 });

      clock.advance(DAY);
      setSource('reg-cars', [Y, Z, Z]);
      await runFull('reg-cars');
      const day2 = clock.now().toISOString();
      assert.deepEqual(await persons(), { [X]: day1, [Y]: day1, [Z]: day2 });
      assert.deepEqual(await holders(Y), ['reg_cars', 'reg_civil']);
      assert.deepEqual(await holders(Z), ['reg_cars']);

      // X leaves the civil register and Z enters it: X is still a person the hub has seen.
      clock.advance(DAY);
      setSource('reg-civil', [Y, Z]);
      await runFull('reg-civil');
      assert.deepEqual(await persons(), { [X]: day1, [Y]: day1, [Z]: day2 });
      assert.deepEqual(await holders(X), []);
      assert.deepEqual(await holders(Z), ['reg_cars', 'reg_civil']);
    });
  },
);
