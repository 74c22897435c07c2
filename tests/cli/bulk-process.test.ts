import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { BULK_NODE_FLAGS, missingBulkFlags, missingNodeFlags } from '../../server/cli/bulk-process.mjs';
import { createTempDir } from '../support/databases.ts';
import { validId, writeDefinition } from '../support/registry-fixture.ts';
import { startHttpRegistry, vehicleDefinition, type HttpRegistry } from '../support/registry-http-server.ts';
import { runHubCli, spawnHubCli } from '../support/run-hub-cli.ts';
import { findChildProcesses } from '../support/process-tree.ts';

const YOUNG = '--max-semi-space-size=4';

describe('hub commands that load in bulk run with a small young generation', () => {
  it('asks for the flags for a connector run, the demo and a copy, and for no other command', () => {
    assert.deepEqual(BULK_NODE_FLAGS, [YOUNG]);
    for (const args of [
      ['connectors', 'run', 'x', '--full'],
      ['demo', '--persons', '10'],
      ['copy', '--to', 'u'],
    ])
      assert.deepEqual(missingNodeFlags(args, [], ''), [YOUNG], args.join(' '));
    for (const args of [
      [],
      ['start'],
      ['connectors', 'list'],
      ['connectors'],
      ['run'],
      ['grants'],
      ['--help'],
    ])
      assert.deepEqual(missingNodeFlags(args, [], ''), [], args.join(' '));
  });

  it('leaves a young generation an operator chose, on the command line or in NODE_OPTIONS', () => {
    const run = ['connectors', 'run', 'x'];
    assert.deepEqual(missingNodeFlags(run, ['--max-semi-space-size=16'], ''), []);
    assert.deepEqual(missingNodeFlags(run, [], '--inspect --max-semi-space-size=32'), []);
    assert.deepEqual(missingNodeFlags(run, ['--max-old-space-size=512'], '--trace-gc'), [YOUNG]);
    assert.deepEqual(missingNodeFlags(run, [], undefined), [YOUNG]);
    // A serving hub's own run processes: the operator's NODE_OPTIONS reach them too.
    assert.deepEqual(missingBulkFlags([], '--max-semi-space-size=32'), []);
    assert.deepEqual(missingBulkFlags([], ''), [YOUNG]);
  });

  describe('a connector run from the command line', () => {
    let dir: string;
    let registry: HttpRegistry;
    let env: NodeJS.ProcessEnv;
    let dbFile: string;

    before(async () => {
      dir = await createTempDir('hub-bulk-');
      dbFile = path.join(dir, 'hub.sqlite');
      env = { HUB_DATA_DIR: dir, HUB_DB: `sqlite:${dbFile}`, VEH_TOKEN: 'secret-token' };
      registry = await startHttpRegistry(
        Array.from({ length: 5 }, (_, i) => ({
          id: validId(i),
          name: `n${i}`,
          plate: `P-${i}`,
          updated: i + 1,
        })),
      );
      await writeDefinition(path.join(dir, 'connectors'), 'veh-vehicles', vehicleDefinition(registry.url));
      const first = await runHubCli(['connectors', 'run', 'veh-vehicles', '--json'], env);
      assert.equal(first.code, 0, first.stderr);
    });

    after(async () => {
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('passes the exit code and output of the run through: a failure exits 1, a success 0', async function () {
      this.timeout(60_000);
      const failed = await runHubCli(['connectors', 'run', 'veh-vehicles', '--json'], {
        ...env,
        VEH_TOKEN: '',
      });
      assert.equal(failed.code, 1);
      assert.match((JSON.parse(failed.stdout) as { error: string }).error, /VEH_TOKEN/);
      const full = await runHubCli(['connectors', 'run', 'veh-vehicles', '--full', '--json'], env);
      assert.equal(full.code, 0, full.stderr);
      const summary = JSON.parse(full.stdout) as { status: string; inserted: number };
      assert.deepEqual([summary.status, summary.inserted], ['succeeded', 5]);
    });

    it('runs in a process with the flag; a SIGTERM to the command ends that process too, nothing of the run lands, and the connector runs again at once', async function () {
      this.timeout(60_000);
      let release!: () => void;
      registry.gate = new Promise<void>((resolve) => (release = resolve));
      registry.records.push({ id: validId(5), name: 'n5', plate: 'P-5', updated: 6 });
      const asked = registry.requests.length;
      const command = spawnHubCli(['connectors', 'run', 'veh-vehicles', '--full', '--json'], env);
      const ended = once(command, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      try {
        // The run holds the connector's lock and waits on the registry's answer.
        while (registry.requests.length === asked) await new Promise((resolve) => setTimeout(resolve, 20));
        const children = await findChildProcesses(command.pid!);
        assert.equal(children.length, 1, 'the command runs in one process of its own');
        const runner = children[0]!;
        const argv = (await readFile(`/proc/${runner}/cmdline`, 'utf8')).split('\0');
        assert.ok(argv.includes(YOUNG), argv.join(' '));
        assert.deepEqual(argv.slice(argv.indexOf(YOUNG) + 2), [
          'connectors',
          'run',
          'veh-vehicles',
          '--full',
          '--json',
          '',
        ]);
        command.kill('SIGTERM');
        const [code, signal] = await ended;
        assert.deepEqual([code, signal], [null, 'SIGTERM'], 'the command ends as the run did');
        assert.throws(() => process.kill(runner, 0), /ESRCH/, 'the run ended with the command');
      } finally {
        registry.gate = null;
        release();
      }
      const db = new Database(dbFile, { readonly: true });
      try {
        const count = db.prepare('SELECT COUNT(*) AS n FROM veh_vehicles').get() as { n: number };
        assert.equal(count.n, 5, 'the cut-off full load replaced nothing');
        // The connector runs again at once, without waiting for the ended run's lease, and says
        // what became of that run.
        const again = await runHubCli(['connectors', 'run', 'veh-vehicles', '--full', '--json'], env);
        assert.equal(again.code, 0, again.stderr);
        assert.equal((JSON.parse(again.stdout) as { inserted: number }).inserted, 6);
        const runs = db
          .prepare(
            "SELECT status, error FROM hub_connector_runs WHERE connector = 'veh-vehicles' ORDER BY id",
          )
          .all() as Array<{ status: string; error: string | null }>;
        assert.deepEqual(
          runs.map((r) => r.status),
          ['succeeded', 'failed', 'succeeded', 'failed', 'succeeded'],
        );
        assert.match(runs[3]!.error!, /interrupted/);
      } finally {
        db.close();
      }
    });
  });
});
