import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { readConfig } from '../../../server/config.ts';
import { startHub, type RunningHub } from '../../../server/main.ts';
import { createClient } from '../../../server/services/client-service.ts';
import { createTempDir, describeEachDatabase, type SuiteDatabase } from '../../support/databases.ts';
import { insertEntities } from '../../support/hub-context.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';
import { harnessPostgresUrl } from '../../support/root-hooks.ts';

interface Started {
  hub: RunningHub;
  lines: string[];
  logs: Array<Record<string, unknown>>;
}

const OPERATOR = 'safe-serving-test';

async function start(db: SuiteDatabase, dir: string, env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const config = readConfig(
    { HUB_DATA_DIR: dir, HUB_SCHEDULER: 'off', HUB_DEMO_PERSONS: '60', ...env },
    { databaseUrl: db.url(), port: 0 },
  );
  const lines: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const hub = await startHub(config, (line) => lines.push(line), { logger });
  return { hub, lines, logs };
}

const csvConnector = (name: string, table: string, file: string) => ({
  name,
  entity: 'VEH',
  entity_label: { en: 'Vehicles', ar: 'المركبات' },
  source: { kind: 'csv', path: file },
  target: { table, label: { en: 'Registered vehicles', ar: 'المركبات المسجلة' } },
  columns: { national_id: { from: 'NID', required: true }, plate: { from: 'PLATE' } },
});

describeEachDatabase('a hub that serves safely', (db) => {
  let dir: string;

  before(async () => {
    dir = await createTempDir('hub-safe-serving-');
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads no demo into a HUB_DB warehouse unless HUB_DEMO=on, and never into one that holds data', async function () {
    this.timeout(180_000);
    const empty = await createTempDir('hub-safe-demo-');
    try {
      const auto = await start(db, empty);
      assert.match(auto.lines.join('\n'), /the demo is not loaded into .* unless HUB_DEMO=on/);
      await insertEntities(auto.hub.ctx, 'NAF');
      await createClient(auto.hub.ctx, { entity: 'NAF', name: 'the real MIS' }, OPERATOR);
      const counts = async (s: Started) => ({
        users: Number(
          (await s.hub.ctx.knex('hub_users').count({ n: '*' }).first<{ n: number | string }>())?.n,
        ),
        clients: Number(
          (await s.hub.ctx.knex('hub_clients').count({ n: '*' }).first<{ n: number | string }>())?.n,
        ),
        tables: Number(
          (await s.hub.ctx.knex('hub_tables').count({ n: '*' }).first<{ n: number | string }>())?.n,
        ),
      });
      assert.deepEqual(await counts(auto), { users: 0, clients: 1, tables: 0 });
      await auto.hub.stop();

      const holding = await start(db, empty, { HUB_DEMO: 'on' });
      assert.match(holding.lines.join('\n'), /the demo is not loaded: .* already holds API clients/);
      assert.deepEqual(await counts(holding), { users: 0, clients: 1, tables: 0 });
      await holding.hub.stop();
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('skips an invalid connector file, says which and why, and serves the others', async function () {
    this.timeout(120_000);
    await writeFile(path.join(dir, 'vehicles.csv'), `NID,PLATE\n${validId(1)},A-1\n`);
    await writeDefinition(
      path.join(dir, 'connectors'),
      'veh-vehicles',
      csvConnector('veh-vehicles', 'veh_vehicles', 'vehicles.csv'),
    );
    await writeFile(
      path.join(dir, 'connectors', 'veh-broken.yaml'),
      'name: veh-broken\nentity: VEH\nsource: { kind: csv }\ntarget: { table: veh_broken }\ncolumns: {}\n',
    );
    const { hub, lines, logs } = await start(db, dir);
    try {
      assert.ok(
        lines.some((l) => /^Skipped invalid connector definition .*veh-broken\.yaml: source\.path: /.test(l)),
        lines.join('\n'),
      );
      assert.ok(
        logs.some(
          (l) => l.msg === 'connector definition skipped' && String(l.file).endsWith('veh-broken.yaml'),
        ),
      );
      assert.deepEqual(await hub.ctx.knex('hub_tables').orderBy('name').pluck('name'), ['veh_vehicles']);
      assert.ok(lines.some((l) => l.startsWith('Registry Hub listening on')));
    } finally {
      await hub.stop();
    }
  });

  it('the public status page shows no database location, row counts or error texts; /healthz answers 503 JSON when the warehouse is down', async function () {
    this.timeout(120_000);
    // A failed run whose error names a path: operators see it after sign-in, the public never.
    await writeDefinition(
      path.join(dir, 'connectors'),
      'veh-missing',
      csvConnector('veh-missing', 'veh_missing', 'secret-share/plates.csv'),
    );
    const { hub, logs } = await start(db, dir);
    let down = false;
    try {
      const { runConnectorByName } = await import('../../../server/services/connector-service.ts');
      const failed = await runConnectorByName(hub.ctx, 'veh-missing');
      assert.equal(failed.status, 'failed');
      await runConnectorByName(hub.ctx, 'veh-vehicles');

      const page = await fetch(`${hub.url}/status`);
      const html = await page.text();
      assert.equal(page.status, 200);
      assert.match(html, /Registered vehicles/);
      for (const secret of [
        dir,
        db.url(),
        hub.ctx.warehouse.displayUrl,
        'secret-share',
        failed.error ?? '(no error)',
        'hub.sqlite',
      ]) {
        assert.ok(!html.includes(secret), `the public page shows ${secret}`);
      }
      assert.doesNotMatch(html, /persons|rows|Rows|>1</, 'no counts on the public page');

      const healthy = await fetch(`${hub.url}/healthz`);
      assert.equal(healthy.status, 200);
      assert.deepEqual(await healthy.json(), { status: 'ok', database: db.name });

      await takeWarehouseDown(db, hub);
      down = true;
      const before = logs.length;
      const sick = await fetch(`${hub.url}/healthz`);
      assert.equal(sick.status, 503);
      assert.match(sick.headers.get('content-type') ?? '', /application\/json/);
      assert.deepEqual(await sick.json(), {
        status: 'unavailable',
        database: db.name,
        error: { code: 'warehouse_unavailable', message: 'the warehouse does not answer' },
      });
      const entries = logs.slice(before);
      assert.equal(entries.length, 1, JSON.stringify(entries));
      assert.equal(entries[0]?.msg, 'health check: the warehouse does not answer');
      assert.doesNotMatch(JSON.stringify(entries), /"stack"|\\n\s+at /);

      const downPage = await fetch(`${hub.url}/status`);
      const downHtml = await downPage.text();
      assert.equal(downPage.status, 503);
      assert.ok(
        !downHtml.includes(db.url()) &&
          !/ECONNREFUSED|does not exist|Unable to acquire|terminat/i.test(downHtml),
        downHtml,
      );
    } finally {
      if (down) hub.server.closeAllConnections();
      await hub.stop().catch(() => undefined);
    }
  });
});

/**
 * PostgreSQL: the database is dropped under the running hub, as an administrator or an outage
 * would. SQLite has no server to lose: the hub's own connections are closed under it.
 */
async function takeWarehouseDown(db: SuiteDatabase, hub: RunningHub): Promise<void> {
  if (db.name === 'postgres') {
    const name = new URL(db.url()).pathname.slice(1);
    const admin = new pg.Client({ connectionString: harnessPostgresUrl() });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    return;
  }
  await hub.ctx.warehouse.reader.destroy();
  await hub.ctx.warehouse.knex.destroy();
}
