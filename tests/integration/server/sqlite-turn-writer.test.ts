import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Connection } from 'better-sqlite3';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import { acquireRawConnection, withRawConnection } from '../../../warehouse/dialects/raw-connection.ts';
import {
  findSqliteTurnWriter,
  SqliteTurnWriter,
  type TurnWrite,
} from '../../../warehouse/dialects/sqlite-turn-writer.ts';
import { PreparedReads } from '../../../warehouse/prepared-reads.ts';
import { createTempDir } from '../../support/databases.ts';
import { PROJECT_ROOT } from '../../support/project-root.ts';

/** Appends values to a table; a value of 'refuse' breaks the kind's whole part of the turn. */
const appendTo = (table: string): TurnWrite<string, number> => ({
  name: table,
  write: (db: Connection, values) =>
    values.map((value) => {
      if (value === 'refuse') throw new Error(`${table} refuses the value`);
      return Number(db.prepare(`INSERT INTO ${table} (value) VALUES (?)`).run(value).lastInsertRowid);
    }),
});

/** Another process that takes the write lock, writes a row, and commits after `ms`. */
function holdWriteLock(file: string, ms: number): { locked: Promise<void>; exited: Promise<void> } {
  const script = `
    const db = require('better-sqlite3')(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    db.prepare('INSERT INTO second_kind (value) VALUES (?)').run('other process');
    process.stdout.write('locked\\n');
    setTimeout(() => { db.exec('COMMIT'); db.close(); }, Number(process.argv[2]));`;
  const child = spawn(process.execPath, ['-e', script, file, String(ms)], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the locking process exited (${code}) before locking`)));
  });
  const exited = once(child, 'exit').then(([code]) => assert.equal(code, 0));
  return { locked, exited };
}

describe('SQLite turn writer: the small writes of one event-loop turn in one transaction', () => {
  let dir: string;
  let file: string;
  let warehouse: Warehouse;
  let writer: SqliteTurnWriter;
  const first = appendTo('first_kind');
  const second = appendTo('second_kind');
  const readValues = async (table: string) =>
    (await warehouse.knex(table).orderBy('id').pluck('value')) as string[];

  beforeEach(async () => {
    dir = await createTempDir('hub-turns-');
    file = path.join(dir, 'warehouse.sqlite');
    warehouse = openWarehouse(`sqlite:${file}`);
    for (const table of ['first_kind', 'second_kind'])
      await warehouse.knex.schema.createTable(table, (t) => {
        t.increments('id');
        t.string('value').notNullable();
      });
    writer = new SqliteTurnWriter(warehouse.knex);
  });

  afterEach(async () => {
    await writer.settle();
    await closeWarehouse(warehouse);
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every item submitted in one turn, in order, and answers each with its own result', async () => {
    const results = await Promise.all([
      writer.submit(first, 'a'),
      writer.submit(second, 'x'),
      writer.submit(first, 'b'),
    ]);
    assert.deepEqual(results, [1, 1, 2]);
    assert.deepEqual(await readValues('first_kind'), ['a', 'b']);
    assert.deepEqual(await readValues('second_kind'), ['x']);
  });

  it('shares one commit among the items of a turn: another connection sees all of them or none', async () => {
    const watcher = new Database(file, { readonly: true });
    try {
      const seen: number[] = [];
      const counting = appendTo('first_kind');
      const writes = Array.from({ length: 20 }, (_, i) => writer.submit(counting, `v${i}`));
      // Each settled write's waiter looks at the table from outside: the whole turn is there.
      await Promise.all(
        writes.map((w) =>
          w.then(() => {
            seen.push((watcher.prepare('SELECT count(*) AS n FROM first_kind').get() as { n: number }).n);
          }),
        ),
      );
      assert.deepEqual(new Set(seen), new Set([20]));
    } finally {
      watcher.close();
    }
  });

  it('fails only the items of the kind that failed; the others of the same turn are written', async () => {
    const outcomes = await Promise.allSettled([
      writer.submit(first, 'kept'),
      writer.submit(second, 'lost'),
      writer.submit(second, 'refuse'),
    ]);
    assert.equal(outcomes[0].status, 'fulfilled');
    assert.equal(outcomes[1].status, 'rejected');
    assert.equal(outcomes[2].status, 'rejected');
    assert.match(String(outcomes[2].reason), /second_kind refuses the value/);
    assert.deepEqual(await readValues('first_kind'), ['kept']);
    assert.deepEqual(await readValues('second_kind'), []);
    // The next turn is written as usual.
    await writer.submit(second, 'after');
    assert.deepEqual(await readValues('second_kind'), ['after']);
  });

  it('writes nothing of a turn of one kind that failed, answers each of its items with the failure, and writes the next', async () => {
    const outcomes = await Promise.allSettled([writer.submit(first, 'lost'), writer.submit(first, 'refuse')]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['rejected', 'rejected'],
    );
    assert.match(String((outcomes[1] as PromiseRejectedResult).reason), /first_kind refuses the value/);
    assert.deepEqual(await readValues('first_kind'), [], 'the row written before the failure is gone');
    assert.equal(await writer.submit(first, 'after'), 1, 'the next turn is written');
    assert.deepEqual(await readValues('first_kind'), ['after']);
  });

  it('waits for another process that holds the write lock, then writes the whole turn', async () => {
    const other = holdWriteLock(file, 300);
    await other.locked;
    const written = Promise.all([writer.submit(first, 'a'), writer.submit(second, 'b')]);
    await written;
    await other.exited;
    assert.deepEqual(await readValues('first_kind'), ['a']);
    assert.deepEqual(await readValues('second_kind'), ['other process', 'b']);
  });

  it("waits for another process's write lock between turns of the event loop, not inside one", async () => {
    const other = holdWriteLock(file, 1000);
    await other.locked;
    const order: string[] = [];
    const written = writer.submit(first, 'a').then(() => order.push('written'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    order.push('timer');
    await written;
    await other.exited;
    assert.deepEqual(order, ['timer', 'written'], 'the wait for the lock stopped the event loop');
    assert.deepEqual(await readValues('first_kind'), ['a']);
    // The connection's own busy timeout is back for everything else it runs.
    const timeout = await withRawConnection(warehouse.knex, (db: Connection) =>
      db.pragma('busy_timeout', { simple: true }),
    );
    assert.equal(timeout, 15000);
  });

  it('never waits for the lock inside SQLite, whose wait would stop the event loop', async () => {
    // What the connection would wait for another's write lock while this kind's part of the turn runs.
    const lockWait: TurnWrite<string, number> = {
      name: 'lock wait',
      write: (db, values) => {
        for (const value of values) db.prepare('INSERT INTO first_kind (value) VALUES (?)').run(value);
        return values.map(() => db.pragma('busy_timeout', { simple: true }) as number);
      },
    };
    assert.equal(await writer.submit(lockWait, 'before'), 0);
    const other = holdWriteLock(file, 300);
    await other.locked;
    assert.equal(await writer.submit(lockWait, 'while held'), 0);
    await other.exited;
    assert.deepEqual(await readValues('first_kind'), ['before', 'while held']);
    const timeout = await withRawConnection(warehouse.knex, (db: Connection) =>
      db.pragma('busy_timeout', { simple: true }),
    );
    assert.equal(timeout, 15000);
  });

  it('takes along, in the same commit, what was submitted while the turn waited for the lock', async () => {
    // Each item is answered with the number of items its kind wrote in the same transaction.
    const together: TurnWrite<string, number> = {
      name: 'together',
      write: (db, values) => {
        for (const value of values) db.prepare('INSERT INTO first_kind (value) VALUES (?)').run(value);
        return values.map(() => values.length);
      },
    };
    const other = holdWriteLock(file, 300);
    await other.locked;
    const early = writer.submit(together, 'early');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const late = [writer.submit(together, 'late'), writer.submit(second, 'other kind')];
    assert.deepEqual(await Promise.all([early, late[0]]), [2, 2]);
    await Promise.all(late);
    await other.exited;
    assert.deepEqual(await readValues('first_kind'), ['early', 'late']);
    assert.deepEqual(await readValues('second_kind'), ['other process', 'other kind']);
  });

  it('settles once everything submitted is written', async () => {
    const writes = [writer.submit(first, 'a'), writer.submit(first, 'b')];
    await writer.settle();
    assert.deepEqual(await readValues('first_kind'), ['a', 'b']);
    await Promise.all(writes);
  });

  describe('on the reader connection the API keeps for its reads', () => {
    it('waits for a transaction this process holds open on the writer connection, then writes after it', async () => {
      const shared = await acquireRawConnection<Connection>(warehouse.reader);
      try {
        shared.connection.pragma('query_only = OFF');
        writer.shareConnection(shared.connection);
        let turn: Promise<number> | undefined;
        let writtenDuringLoad = false;
        await warehouse.knex.transaction(async (trx) => {
          await trx('first_kind').insert({ value: 'load' });
          turn = writer.submit(first, 'api');
          void turn.then(() => (writtenDuringLoad = true));
          await new Promise((resolve) => setTimeout(resolve, 100));
          assert.equal(writtenDuringLoad, false, 'the turn was written inside the open transaction');
        });
        assert.equal(await turn, 2);
        assert.deepEqual(await readValues('first_kind'), ['load', 'api']);
      } finally {
        writer.shareConnection(null);
        await shared.release();
      }
    });

    it("is handed over by the API's prepared reads, which see the turns, and handed back when they close", async () => {
      const turns = findSqliteTurnWriter(warehouse.knex);
      const reads = new PreparedReads(warehouse);
      const count = async () =>
        (await reads.first<{ n: number }>('SELECT count(*) AS n FROM first_kind', []))?.n;
      assert.equal(await count(), 0);
      await turns.submit(first, 'while kept');
      assert.equal(await count(), 1);
      await reads.close();
      await turns.submit(first, 'after close');
      assert.deepEqual(await readValues('first_kind'), ['while kept', 'after close']);
      // The connection went back to the reader pool as a reader again.
      await assert.rejects(
        warehouse.reader.raw("INSERT INTO first_kind (value) VALUES ('reader')"),
        /readonly|query_only|attempt to write/i,
      );
    });
  });
});
