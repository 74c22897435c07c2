import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { validId, writeDefinition } from '../support/registry-fixture.ts';
import { startHttpRegistry, vehicleDefinition, type HttpRegistry } from '../support/registry-http-server.ts';
import { runHubCli } from '../support/run-hub-cli.ts';

describeEachDatabase('hub connectors (command line)', (db) => {
  let dir: string;
  let registry: HttpRegistry;
  let env: NodeJS.ProcessEnv;
  const hub = (...args: string[]) => runHubCli([...args, '--db', db.url()], env);

  before(async () => {
    dir = await createTempDir('hub-cli-');
    env = { HUB_DATA_DIR: dir, VEH_TOKEN: 'secret-token' };
    registry = await startHttpRegistry(
      Array.from({ length: 20 }, (_, i) => ({
        id: validId(i),
        name: `مالك ${i}`,
        plate: `C-${i}`,
        updated: i + 1,
      })),
    );
    await writeDefinition(path.join(dir, 'connectors'), 'veh-vehicles', vehicleDefinition(registry.url));
  });

  after(async () => {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('migrate creates the schema and registers the connectors', async () => {
    const result = await hub('migrate');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /applied: 001-hub-tables/);
    assert.match(result.stdout, /1 connector definitions registered/);
    const again = await hub('migrate');
    assert.match(again.stdout, /schema is up to date/);
  });

  it('connectors list shows mode, schedule and last status', async () => {
    const result = await hub('connectors', 'list');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /veh-vehicles\s+VEH\s+veh_vehicles\s+http\s+incremental\s+-\s+never run/);
  });

  it('connectors run --json prints the run summary', async () => {
    const result = await hub('connectors', 'run', 'veh-vehicles', '--json');
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as Record<string, unknown>;
    assert.deepEqual(
      [summary.status, summary.mode, summary.read, summary.inserted, summary.rejected, summary.watermark_to],
      ['succeeded', 'incremental', 20, 20, 0, '20'],
    );
  });

  it('connectors run --full replaces the table and says so in plain text', async () => {
    const result = await hub('connectors', 'run', 'veh-vehicles', '--full');
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /veh-vehicles\s+succeeded\s+full\s+20 read, 20 inserted, 0 updated, 20 deleted, 0 rejected/,
    );
  });

  it('connectors history lists the runs, newest first', async () => {
    const result = await hub('connectors', 'history', 'veh-vehicles');
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[1]!, /^2\t\S+\tfull\tmanual\tsucceeded\t20\t20\t0\t20\t0$/);
    assert.match(lines[2]!, /^1\t\S+\tincremental\tmanual\tsucceeded\t20\t20\t0\t0\t0$/);
  });

  it('a second process cannot run the connector while the first one does', async () => {
    let release!: () => void;
    registry.gate = new Promise<void>((resolve) => (release = resolve));
    const asked = registry.requests.length;
    const first = hub('connectors', 'run', 'veh-vehicles', '--full', '--json');
    try {
      // The first process reads the registry only once it holds the connector's lock.
      while (registry.requests.length === asked) await new Promise((resolve) => setTimeout(resolve, 20));
      const second = await hub('connectors', 'run', 'veh-vehicles', '--full', '--json');
      assert.equal(second.code, 1);
      assert.match(second.stderr, /^hub: connector:veh-vehicles is already running/m);
    } finally {
      registry.gate = null;
      release();
    }
    assert.equal((await first).code, 0);
  });

  it('exits 1 with a message naming an unknown connector', async () => {
    const result = await hub('connectors', 'run', 'no-such-connector');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^hub: no connector named "no-such-connector" \(known: veh-vehicles\)/m);
  });

  it('exits 1 when a failed run is reported, and the error is in the summary', async () => {
    const result = await runHubCli(['connectors', 'run', 'veh-vehicles', '--json', '--db', db.url()], {
      ...env,
      VEH_TOKEN: '',
    });
    assert.equal(result.code, 1);
    const summary = JSON.parse(result.stdout) as { status: string; error: string };
    assert.equal(summary.status, 'failed');
    assert.match(summary.error, /VEH_TOKEN/);
  });

  it('exits 2 on usage errors', async () => {
    assert.equal((await hub('connectors', 'frobnicate')).code, 2);
    assert.equal((await hub('demo', '--persons', 'many')).code, 2);
    assert.equal((await hub('connectors', 'history', 'veh-vehicles', '--limit', '0')).code, 2);
  });

  it('lists a bad connector definition as invalid, naming the file and the field, beside the good ones', async function () {
    this.timeout(180_000);
    const bad = path.join(dir, 'connectors', 'zz-bad.yaml');
    await writeFile(
      bad,
      'name: zz-bad\nentity: ZZ\nsource: { kind: ftp }\ntarget: { table: other_table }\ncolumns: {}\n',
    );
    const result = await hub('connectors', 'list');
    const run = await hub('connectors', 'run', 'veh-vehicles', '--json');
    await rm(bad);
    assert.equal(result.code, 1, 'a script must notice the skipped file');
    assert.equal(result.stderr, '');
    const lines = result.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^veh-vehicles /);
    assert.match(lines[1] ?? '', /^INVALID .*zz-bad\.yaml: source\.kind: /);
    assert.equal(run.code, 0, `the other connectors still run: ${run.stderr}`);
  });
});

describe('hub command line without a usable warehouse', () => {
  it('exits 1 naming the unsupported database URL', async () => {
    const result = await runHubCli(['migrate', '--db', 'oracle://scott:tiger@db/prod']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^hub: unsupported database URL "oracle:\/\/scott:\*\*\*@db\/prod"/m);
    assert.doesNotMatch(result.stderr, /tiger/);
  });
});
