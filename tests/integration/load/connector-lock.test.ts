import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { acquireLock } from '../../../warehouse/lock.ts';
import { ownProcessIdentity } from '../../../warehouse/process-identity.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { holdLockInAnotherProcess } from '../../support/lock-holder-process.ts';
import { createManualClock, openTestContext } from '../../support/hub-context.ts';
import { isHubError } from '../../support/hub-errors.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';
import {
  startHttpRegistry,
  vehicleDefinition,
  type HttpRegistry,
} from '../../support/registry-http-server.ts';

const isBusy = isHubError('connector_busy', 409);

describeEachDatabase('connector lock in the warehouse', (db) => {
  let dir: string;
  let first: AppContext;
  let second: AppContext;
  let registry: HttpRegistry;
  const env = { VEH_TOKEN: 'secret-token' };

  before(async () => {
    dir = await createTempDir('hub-lock-');
    // Two contexts with their own connection pools behave like two hub processes on one warehouse.
    first = Object.assign(openTestContext(db.url(), dir), { env });
    second = Object.assign(openTestContext(db.url(), dir), { env });
    registry = await startHttpRegistry(
      Array.from({ length: 12 }, (_, i) => ({
        id: validId(i),
        name: `مالك ${i}`,
        plate: `L-${i}`,
        updated: i + 1,
      })),
    );
    await writeDefinition(first.config.connectorsDir, 'veh-vehicles', vehicleDefinition(registry.url));
    await prepareWarehouse(first);
  });

  after(async () => {
    await registry.close();
    await closeContext(first);
    await closeContext(second);
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a second holder of the same lock and frees it on release', async () => {
    const held = await acquireLock(first.knex, 'connector:test-a', { clock: first.clock });
    await assert.rejects(acquireLock(second.knex, 'connector:test-a', { clock: second.clock }), isBusy);
    await held.release();
    const again = await acquireLock(second.knex, 'connector:test-a', { clock: second.clock });
    await again.release();
  });

  it('takes over a lock whose holder stopped renewing it once the lease has expired', async () => {
    const clock = createManualClock('2026-03-01T00:00:00.000Z');
    const stale = await acquireLock(first.knex, 'connector:test-b', { clock, leaseMs: 60_000 });
    await assert.rejects(acquireLock(second.knex, 'connector:test-b', { clock, leaseMs: 60_000 }), isBusy);
    clock.advance(61_000);
    const fresh = await acquireLock(second.knex, 'connector:test-b', { clock, leaseMs: 60_000 });
    assert.notEqual(fresh.owner, stale.owner);
    await stale.release(); // a late release by the old holder must not free the new holder's lock
    await assert.rejects(acquireLock(first.knex, 'connector:test-b', { clock, leaseMs: 60_000 }), isBusy);
    await fresh.release();
  });

  it('never runs the same connector twice at once from two hub processes', async () => {
    registry.delayMs = 40;
    const [def] = await readConnectorDefinitions(first.config.connectorsDir);
    const results = await Promise.allSettled([runConnector(def!, first), runConnector(def!, second)]);
    registry.delayMs = 0;
    const succeeded = results.filter((r) => r.status === 'fulfilled' && r.value.status === 'succeeded');
    // A run refused for any other reason fails here, with that reason.
    const refused = results.filter((r) => r.status === 'rejected' && isBusy(r.reason));
    assert.equal(succeeded.length, 1);
    assert.equal(refused.length, 1);
    const runs = await first
      .knex('hub_connector_runs')
      .where({ connector: 'veh-vehicles' })
      .count({ n: '*' })
      .first<{ n: number | string }>();
    assert.equal(Number(runs?.n), 1);
    const rows = await first.knex('veh_vehicles').count({ n: '*' }).first<{ n: number | string }>();
    assert.equal(Number(rows?.n), 12);
  });

  it('frees at once a lock whose holder process ended on this machine, before its lease runs out', async function () {
    this.timeout(60_000);
    const holder = await holdLockInAnotherProcess(db.url(), 'connector:test-c');
    await assert.rejects(acquireLock(second.knex, 'connector:test-c', { clock: second.clock }), isBusy);
    await holder.kill('SIGKILL');
    const row = await first
      .knex('hub_locks')
      .where({ name: 'connector:test-c' })
      .first<{ expires_at: string }>();
    assert.ok(row.expires_at > new Date().toISOString(), "the dead holder's lease has not run out");
    const taken = await acquireLock(second.knex, 'connector:test-c', { clock: second.clock });
    // Only one process takes it: the first to see the holder gone.
    await assert.rejects(acquireLock(first.knex, 'connector:test-c', { clock: first.clock }), isBusy);
    await taken.release();
  });

  it('leaves the lock of a holder that may still run to its lease: this process, another machine, another container', async () => {
    const clock = createManualClock('2026-03-02T00:00:00.000Z');
    const own = ownProcessIdentity();
    assert.ok(own !== null, 'this machine tells processes apart');
    const [boot, namespace] = own.split('/');
    const gonePid = '2147483647';
    for (const holder of [
      own,
      `00000000-0000-0000-0000-000000000000/${namespace}/${gonePid}/1`,
      `${boot}/1/${gonePid}/1`,
      'not an identity',
    ]) {
      await first.knex('hub_locks').insert({
        name: 'connector:test-d',
        owner: 'someone',
        holder,
        acquired_at: '2026-03-02T00:00:00.000Z',
        expires_at: '2026-03-02T00:02:00.000Z',
      });
      await assert.rejects(acquireLock(second.knex, 'connector:test-d', { clock }), isBusy, holder);
      await first.knex('hub_locks').where({ name: 'connector:test-d' }).delete();
    }
    // The same row with a holder of this machine and container whose process is gone: taken at once.
    await first.knex('hub_locks').insert({
      name: 'connector:test-d',
      owner: 'someone',
      holder: `${boot}/${namespace}/${gonePid}/1`,
      acquired_at: '2026-03-02T00:00:00.000Z',
      expires_at: '2026-03-02T00:02:00.000Z',
    });
    const taken = await acquireLock(second.knex, 'connector:test-d', { clock });
    await taken.release();
  });
});
