import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';
import {
  startHttpRegistry,
  vehicleDefinition,
  type HttpRegistry,
  type HttpRegistryRecord,
} from '../../support/registry-http-server.ts';

const vehicle = (plate: string, owner: string, updated: number, deleted = false): HttpRegistryRecord => ({
  id: validId(Number(plate.slice(2))),
  name: owner,
  plate,
  updated,
  ...(deleted ? { deleted: true } : {}),
});

/**
 * A change feed may cancel a record and register it again (a vehicle deregistered and then
 * registered anew) within what the hub reads as one batch. The record's last event decides,
 * whichever way the run applies the feed: into an empty table or batch by batch.
 */
describeEachDatabase('an incremental feed that deletes a record and then registers it again', (db) => {
  let dir: string;
  let ctx: AppContext;
  let registry: HttpRegistry;

  const run = async () => {
    const def = (await readConnectorDefinitions(ctx.config.connectorsDir)).find(
      (d) => d.name === 'veh-vehicles',
    )!;
    const summary = await runConnector(def, ctx);
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    return summary;
  };
  const owners = async () =>
    Object.fromEntries(
      (
        (await ctx
          .knex('veh_vehicles')
          .select('registration_number', 'owner_name')
          .orderBy('registration_number')) as Array<{
          registration_number: string;
          owner_name: string;
        }>
      ).map((r) => [r.registration_number, r.owner_name]),
    );
  const personKey = async () =>
    (await ctx
      .knex('hub_person_tables')
      .where({ table_name: 'veh_vehicles' })
      .orderBy('national_id')
      .pluck('national_id')) as string[];

  before(async () => {
    dir = await createTempDir('hub-delete-register-');
    ctx = Object.assign(openTestContext(db.url(), dir), { env: { VEH_TOKEN: 'secret-token' } });
    registry = await startHttpRegistry();
    // One batch holds the whole feed, so deletion and registration meet in it.
    await writeDefinition(
      ctx.config.connectorsDir,
      'veh-vehicles',
      vehicleDefinition(registry.url, { batch_size: 100 }),
    );
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await registry.close();
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('first run, into an empty table: the record registered after its deletion stays, one deleted after registering is gone', async () => {
    registry.records = [
      vehicle('P-1', 'first owner', 1),
      vehicle('P-2', 'old owner', 2),
      vehicle('P-2', 'old owner', 3, true),
      vehicle('P-2', 'new owner', 4),
      vehicle('P-3', 'short-lived', 5),
      vehicle('P-3', 'short-lived', 6, true),
    ];
    await run();
    assert.deepEqual(await owners(), { 'P-1': 'first owner', 'P-2': 'new owner' });
    assert.deepEqual(await personKey(), [validId(1), validId(2)].sort());
  });

  it('a later run, batch by batch: the same feed order gives the same end', async () => {
    registry.records = [
      ...registry.records,
      vehicle('P-1', 'first owner', 10, true),
      vehicle('P-1', 'second owner', 11),
      vehicle('P-4', 'brief', 12),
      vehicle('P-4', 'brief', 13, true),
      vehicle('P-2', 'new owner', 14, true),
    ];
    await run();
    assert.deepEqual(await owners(), { 'P-1': 'second owner' });
    assert.deepEqual(await personKey(), [validId(1)]);
  });
});
