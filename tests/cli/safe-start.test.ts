import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { writeDefinition } from '../support/registry-fixture.ts';
import { runHubCli, type CliResult } from '../support/run-hub-cli.ts';

const STACK_TRACE = /\n\s+at |node_modules|\.ts:\d+/;

/** The promise of a failed command: exit 1, one `hub:` line on stderr and nothing else there. */
function assertOneLineFailure(result: CliResult, message: RegExp): void {
  assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
  const lines = result.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line, got:\n${result.stderr}`);
  assert.match(lines[0]!, message);
  assert.doesNotMatch(result.stderr + result.stdout, STACK_TRACE);
}

describe('hub start fails at once, with one line, when it cannot serve', function () {
  this.timeout(240_000);
  let dir: string;
  let busy: Server;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dir = await createTempDir('hub-safe-start-');
    // A scheduled connector: if the scheduler started before the port was bound, it would say so.
    await writeDefinition(path.join(dir, 'connectors'), 'veh-vehicles', {
      name: 'veh-vehicles',
      entity: 'VEH',
      source: { kind: 'csv', path: 'vehicles.csv' },
      target: { table: 'veh_vehicles' },
      columns: { national_id: { required: true } },
      schedule: '* * * * *',
    });
    env = { HUB_DATA_DIR: dir, HUB_DEMO: 'off', LOG_LEVEL: 'info' };
    busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
  });

  after(async () => {
    busy.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a port in use: exit 1 naming the address, and no connector was scheduled', async () => {
    const { port } = busy.address() as AddressInfo;
    const result = await runHubCli(['start', '--port', String(port)], env);
    assertOneLineFailure(
      result,
      new RegExp(
        `^hub: cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use \\(EADDRINUSE\\)$`,
      ),
    );
    assert.doesNotMatch(result.stdout, /Scheduled|listening/);
  });

  it('a configuration that cannot be read: exit 1 naming the setting', async () => {
    const result = await runHubCli(['start'], { ...env, PORT: 'eighty' });
    assertOneLineFailure(result, /^hub: invalid configuration: PORT: /);
    const check = await runHubCli(['start'], { ...env, HUB_NATIONAL_ID_CHECK: 'mod97' });
    assertOneLineFailure(check, /^hub: invalid configuration: HUB_NATIONAL_ID_CHECK: /);
  });

  it('a warehouse that cannot be migrated: exit 1 naming it, without a stack', async () => {
    const notADatabase = path.join(dir, 'notes.sqlite');
    await writeFile(notADatabase, 'these are meeting notes, not a database\n'.repeat(200));
    const sqlite = await runHubCli(['start', '--port', '0', '--db', `sqlite:${notADatabase}`], env);
    assertOneLineFailure(
      sqlite,
      /^hub: cannot open the warehouse sqlite:.*notes\.sqlite: file is not a database$/,
    );
    const pg = await runHubCli(
      ['start', '--port', '0', '--db', 'postgres://hub:s3cret@127.0.0.1:1/hub'],
      env,
    );
    assertOneLineFailure(
      pg,
      /^hub: cannot open the warehouse postgres:\/\/hub:\*\*\*@127\.0\.0\.1:1\/hub: connect ECONNREFUSED 127\.0\.0\.1:1$/,
    );
    assert.doesNotMatch(pg.stderr, /s3cret/);
  });
});

describeEachDatabase('read-only commands on a mistyped or foreign --db', (db) => {
  let dir: string;
  const READ_ONLY = [
    ['grants'],
    ['connectors', 'list'],
    ['connectors', 'history', 'veh-vehicles'],
    ['queries', 'list'],
    ['audit', 'verify'],
    ['revoke', 'NAF', 'cspd_personal_info', '--dry-run'],
  ];

  before(async () => {
    dir = await createTempDir('hub-read-only-');
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  if (db.name === 'sqlite') {
    it('a path where no warehouse is: exit 1 naming it, and no file is created', async function () {
      this.timeout(300_000);
      const typo = path.join(dir, 'hub.sqllite');
      for (const command of READ_ONLY) {
        const result = await runHubCli([...command, '--db', `sqlite:${typo}`], { HUB_DATA_DIR: dir });
        assertOneLineFailure(result, /^hub: no warehouse at .*hub\.sqllite: check --db or HUB_DB/);
        assert.equal(existsSync(typo), false, `${command.join(' ')} created ${typo}`);
      }
    });
  }

  it('a database that is not a hub warehouse: exit 1, and its schema is left alone', async function () {
    this.timeout(300_000);
    let url = db.url();
    if (db.name === 'sqlite') {
      const file = path.join(dir, 'other-app.sqlite');
      const other = new Database(file);
      other.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY)');
      other.close();
      url = `sqlite:${file}`;
    }
    for (const command of READ_ONLY) {
      const result = await runHubCli([...command, '--db', url], { HUB_DATA_DIR: dir });
      assertOneLineFailure(
        result,
        /^hub: .* is not a migrated hub warehouse \(missing 001-hub-tables, .*\): check --db, or run hub migrate$/,
      );
    }
    const check = await runHubCli(['connectors', 'list', '--db', url], { HUB_DATA_DIR: dir });
    assert.equal(check.code, 1, 'still not migrated: no read-only command migrated it');
  });
});
