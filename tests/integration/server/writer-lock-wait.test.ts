import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Database as Connection } from 'better-sqlite3';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import { withRawConnection } from '../../../warehouse/dialects/raw-connection.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { prepareOnce } from '../../../warehouse/dialects/sqlite-statements.ts';
import { findSqliteTurnWriter, type TurnWrite } from '../../../warehouse/dialects/sqlite-turn-writer.ts';
import { inWriteTransaction } from '../../../warehouse/write-transaction.ts';
import { createTempDir } from '../../support/databases.ts';
import { PROJECT_ROOT } from '../../support/project-root.ts';

const note: TurnWrite<string, number> = {
  name: 'notes',
  write: (db: Connection, values) =>
    values.map((value) => Number(db.prepare('INSERT INTO notes (value) VALUES (?)').run(value).changes)),
};

/** Another process that holds the write lock for `ms`, as a second hub process's commit does. */
async function holdWriteLock(file: string, ms: number): Promise<{ exited: Promise<void> }> {
  const script = `
    const db = require('better-sqlite3')(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO notes (value) VALUES ('other process')").run();
    process.stdout.write('locked\\n');
    setTimeout(() => { db.exec('COMMIT'); db.close(); }, Number(process.argv[2]));`;
  const child = spawn(process.execPath, ['-e', script, file, String(ms)], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the locking process exited (${code}) before locking`)));
  });
  return { exited: once(child, 'exit').then(([code]) => assert.equal(code, 0)) };
}

describe("SQLite writer's connection: it waits for another writer's lock however it was used before", () => {
  let dir: string;
  let file: string;
  let warehouse: Warehouse;

  const busyTimeout = () =>
    withRawConnection(warehouse.knex, (db: Connection) => db.pragma('busy_timeout', { simple: true }));

  beforeEach(async () => {
    dir = await createTempDir('hub-writer-wait-');
    file = path.join(dir, 'warehouse.sqlite');
    warehouse = openWarehouse(`sqlite:${file}`);
    await migrateWarehouse(warehouse.knex);
    await warehouse.knex.schema.createTable('notes', (t) => {
      t.increments('id');
      t.string('value').notNullable();
    });
  });

  afterEach(async () => {
    await findSqliteTurnWriter(warehouse.knex).settle();
    await closeWarehouse(warehouse);
    await rm(dir, { recursive: true, force: true });
  });

  it('after an API turn and a write transaction on it, a write meeting another process’s lock waits and succeeds', async () => {
    const usual = await busyTimeout();
    assert.ok(Number(usual) >= 1000, `busy_timeout ${String(usual)}`);
    // A turn written on the writer's own connection, then a write transaction (a grant, a swap).
    await findSqliteTurnWriter(warehouse.knex).submit(note, 'turn');
    await inWriteTransaction(warehouse.knex, (trx) => trx('notes').insert({ value: 'transaction' }));
    assert.equal(await busyTimeout(), usual);
    const lock = await holdWriteLock(file, 300);
    // A load's batch: prepared inserts in a transaction on the writer's connection.
    await withRawConnection(warehouse.knex, (db: Connection) =>
      db.transaction(() => db.prepare('INSERT INTO notes (value) VALUES (?)').run('batch'))(),
    );
    await lock.exited;
    assert.deepEqual(await warehouse.knex('notes').orderBy('id').pluck('value'), [
      'turn',
      'transaction',
      'other process',
      'batch',
    ]);
  });

  it('hands each caller a statement as prepared, whatever result mode the caller before set on it', async () => {
    await warehouse.knex('notes').insert({ value: 'one' });
    const sql = 'SELECT id, value FROM notes';
    await withRawConnection(warehouse.knex, (db: Connection) => {
      assert.deepEqual(prepareOnce(db, sql).raw(true).all(), [[1, 'one']]);
      assert.deepEqual(db.prepare(sql).pluck().all(), [1]);
    });
    assert.deepEqual(await warehouse.knex.raw(sql), [{ id: 1, value: 'one' }]);
    await withRawConnection(warehouse.knex, (db: Connection) =>
      assert.deepEqual(db.prepare(sql).all(), [{ id: 1, value: 'one' }]),
    );
  });
});
