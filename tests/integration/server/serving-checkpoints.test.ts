import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { readConfig } from '../../../server/config.ts';
import { startHub } from '../../../server/main.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import {
  SERVING_CHECKPOINT_INTERVAL_MS,
  startServingCheckpoints,
} from '../../../warehouse/dialects/sqlite-serving-checkpoints.ts';
import { createTempDir } from '../../support/databases.ts';
import { countInMainFile } from '../../support/sqlite-main-file.ts';
import { countAuditRows } from '../../support/audit-rows.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const WAIT_MS = 10_000;
const POLL_MS = 50;

/** Waits until the database file alone holds at least `expected` rows; returns the last count found. */
async function waitForMainFile(file: string, table: string, expected: number): Promise<number> {
  const until = Date.now() + WAIT_MS;
  let found = await countInMainFile(file, table);
  while (found < expected && Date.now() < until) {
    await sleep(POLL_MS);
    found = await countInMainFile(file, table);
  }
  return found;
}

describe('SQLite WAL checkpoints while the hub serves', () => {
  let dir: string;
  let file: string;
  let warehouse: Warehouse;

  beforeEach(async () => {
    dir = await createTempDir('hub-serving-checkpoints-');
    file = path.join(dir, 'warehouse.sqlite');
    warehouse = openWarehouse(`sqlite:${file}`);
    await warehouse.knex.schema.createTable('turns', (t) => {
      t.increments('id');
      t.string('value').notNullable();
    });
  });

  afterEach(async () => {
    await closeWarehouse(warehouse);
    await rm(dir, { recursive: true, force: true });
  });

  const commitRows = async (count: number) => {
    for (let i = 0; i < count; i++) await warehouse.knex('turns').insert({ value: `turn ${i}` });
  };

  it('copies small commits into the database file soon, where SQLite alone waits for 1,000 pages of WAL', async () => {
    // Without the thread: twenty small commits stay in the WAL, as the copy of the file shows.
    await commitRows(20);
    assert.equal(await countInMainFile(file, 'turns'), 0);

    const checkpoints = await startServingCheckpoints(warehouse);
    assert.ok(checkpoints !== null, 'a SQLite warehouse in a file gets the thread');
    try {
      assert.equal(await waitForMainFile(file, 'turns', 20), 20);
      await commitRows(20);
      assert.equal(await waitForMainFile(file, 'turns', 40), 40);
    } finally {
      await checkpoints.stop();
    }
    // Once stopped, nothing copies the next commits: they wait in the WAL again.
    await commitRows(5);
    await sleep(10 * SERVING_CHECKPOINT_INTERVAL_MS);
    assert.equal(await countInMainFile(file, 'turns'), 40);
    assert.equal(Number((await warehouse.knex('turns').count({ n: '*' }))[0]!.n), 45);
  });

  it('starts no thread for an in-memory or a read-only warehouse', async () => {
    const memory = openWarehouse('sqlite::memory:');
    const readOnly = openWarehouse(`sqlite:${file}`, { readOnly: true });
    try {
      assert.equal(await startServingCheckpoints(memory), null);
      assert.equal(await startServingCheckpoints(readOnly), null);
    } finally {
      await closeWarehouse(memory);
      await closeWarehouse(readOnly);
    }
  });

  it('a running hub’s audit rows reach the database file while it serves within moments of being written', async function () {
    this.timeout(60_000);
    const hubDir = path.join(dir, 'hub');
    const config = readConfig(
      { HUB_DATA_DIR: hubDir, HUB_SCHEDULER: 'off', HUB_DEMO_PERSONS: '60', LOG_LEVEL: 'silent' },
      { port: 0 },
    );
    const hub = await startHub(config, () => undefined);
    const hubFile = path.join(hubDir, 'hub.sqlite');
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${hub.url}/api/v1/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'x' }),
        });
        assert.equal(res.status, 401);
      }
      const logged = await countAuditRows(hub.ctx.knex);
      const failed = await hub.ctx.knex('hub_audit').where({ action: 'token.failed' }).count({ n: '*' });
      assert.equal(Number(failed[0]!.n), 3);
      const inFile = await waitForMainFile(hubFile, 'hub_audit', logged);
      assert.ok(inFile >= logged, `the database file holds ${inFile} of ${logged} audit rows`);
    } finally {
      await hub.stop();
    }
  });
});
