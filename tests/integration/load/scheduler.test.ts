import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { ConnectorScheduler } from '../../../connectors/scheduler.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';
import {
  startHttpRegistry,
  vehicleDefinition,
  type HttpRegistry,
} from '../../support/registry-http-server.ts';

async function waitFor<T>(probe: () => Promise<T | undefined>, attempts = 100): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('condition not reached');
}

describeEachDatabase('connector scheduler', (db) => {
  let dir: string;
  let ctx: AppContext;
  let registry: HttpRegistry;

  before(async () => {
    dir = await createTempDir('hub-schedule-');
    ctx = Object.assign(openTestContext(db.url(), dir), { env: { VEH_TOKEN: 'secret-token' } });
    registry = await startHttpRegistry([{ id: validId(7), name: 'مالك', plate: 'S-1', updated: 1 }]);
    // node-cron accepts a seconds field: every second, so the test sees a scheduled run quickly.
    await writeDefinition(
      ctx.config.connectorsDir,
      'veh-vehicles',
      vehicleDefinition(registry.url, { schedule: '* * * * * *' }),
    );
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await registry.close();
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a connector on its cron schedule and records the trigger', async () => {
    const scheduler = new ConnectorScheduler(ctx);
    const scheduled = scheduler.start(await readConnectorDefinitions(ctx.config.connectorsDir));
    assert.deepEqual(scheduled, ['veh-vehicles (* * * * * *)']);
    try {
      const run = await waitFor(() =>
        ctx
          .knex('hub_connector_runs')
          .where({ connector: 'veh-vehicles', trigger: 'schedule', status: 'succeeded' })
          .first<{ rows_inserted: number } | undefined>(),
      );
      assert.equal(Number(run.rows_inserted), 1);
    } finally {
      await scheduler.stop();
    }
    const rows = await ctx.knex('veh_vehicles').pluck('registration_number');
    assert.deepEqual(rows, ['S-1']);
  });
});
