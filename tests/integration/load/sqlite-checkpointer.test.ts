import assert from 'node:assert/strict';
import { copyFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startBackgroundCheckpoints } from '../../../warehouse/dialects/sqlite-checkpointer.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import { sqliteDialect } from '../../../warehouse/dialects/sqlite.ts';
import { withRawConnection } from '../../../warehouse/dialects/raw-connection.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { createTempDir } from '../../support/databases.ts';

const PAD = 'x'.repeat(180);

/** The database file alone, without its WAL, as a copy: what is in it has been checkpointed. */
async function countInMainFile(file: string, dir: string, table: string): Promise<number> {
  const copy = path.join(dir, `main-only-${Date.now()}.sqlite`);
  await copyFile(file, copy);
  const db = new Database(copy, { readonly: true });
  try {
    const found = db.prepare('SELECT count(*) AS n FROM sqlite_master WHERE name = ?').get(table) as {
      n: number;
    };
    if (found.n === 0) return 0;
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('SQLite background checkpoints', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await createTempDir('hub-checkpointer-');
    file = path.join(dir, 'hub.sqlite');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('copies a writer’s committed rows into the database file while it goes on writing, and readers see every commit whole', async () => {
    const writer = new Database(file);
    writer.pragma('journal_mode = WAL');
    writer.pragma('wal_autocheckpoint = 0');
    writer.exec('CREATE TABLE cards (id INTEGER PRIMARY KEY, pad TEXT)');
    const reader = new Database(file, { readonly: true });
    const checkpointer = await startBackgroundCheckpoints(file);
    const insert = writer.prepare('INSERT INTO cards (pad) VALUES (?)');
    const seen: number[] = [];
    try {
      for (let batch = 1; batch <= 40; batch++) {
        writer.transaction(() => {
          for (let i = 0; i < 500; i++) insert.run(PAD);
        })();
        seen.push((reader.prepare('SELECT count(*) AS n FROM cards').get() as { n: number }).n);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // Given time, the thread copies what was committed without any commit of the writer's doing it.
      let inFile = 0;
      for (let tries = 0; tries < 100 && inFile < 20_000; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        inFile = await countInMainFile(file, dir, 'cards');
      }
      assert.equal(inFile, 20_000);
      const report = await checkpointer.stop();
      assert.ok(report !== null);
      assert.equal(report.checkpointed, report.log);
      assert.deepEqual(
        seen,
        Array.from({ length: 40 }, (_, i) => (i + 1) * 500),
      );
      assert.equal(writer.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      await checkpointer.stop();
      reader.close();
      writer.close();
    }
  });

  it('stops once however often it is asked, and the writer then checkpoints as usual', async () => {
    const writer = new Database(file);
    writer.pragma('journal_mode = WAL');
    writer.exec('CREATE TABLE cards (id INTEGER PRIMARY KEY)');
    const checkpointer = await startBackgroundCheckpoints(file);
    const [first, second] = await Promise.all([checkpointer.stop(), checkpointer.stop()]);
    assert.deepEqual(first, second);
    writer.exec('INSERT INTO cards DEFAULT VALUES');
    writer.close();
  });

  it('refuses a file that does not exist, and does not create it', async () => {
    const missing = path.join(dir, 'missing.sqlite');
    await assert.rejects(startBackgroundCheckpoints(missing), /could not open .*missing\.sqlite/);
    await assert.rejects(stat(missing), { code: 'ENOENT' });
  });
});

describe('SQLite full-load settings', () => {
  let dir: string;
  let file: string;
  let warehouse: Warehouse;

  beforeEach(async () => {
    dir = await createTempDir('hub-full-load-settings-');
    file = path.join(dir, 'hub.sqlite');
    warehouse = openWarehouse(`sqlite:${file}`);
    await migrateWarehouse(warehouse.knex);
  });

  afterEach(async () => {
    await closeWarehouse(warehouse);
    await rm(dir, { recursive: true, force: true });
  });

  const pragmas = () =>
    withRawConnection(warehouse.knex, (db: Database.Database) => ({
      cache: db.pragma('cache_size', { simple: true }),
      autocheckpoint: db.pragma('wal_autocheckpoint', { simple: true }),
    }));

  for (const outcome of ['succeeds', 'fails'] as const) {
    it(`leaves a load that ${outcome} in the database file itself, and the connection's settings as they were`, async () => {
      const before = await pragmas();
      const target = {
        table: 'reg_cards',
        columns: ['national_id', 'pad'],
        key: ['national_id'],
        booleanColumns: [],
      };
      await warehouse.knex.schema.createTable('reg_cards', (t) => {
        t.string('national_id', 32);
        t.text('pad');
      });
      const load = sqliteDialect.withFullLoadSettings!(warehouse.knex, async () => {
        // More than the size from which a thread may copy the frames, whichever writer the machine's load picks.
        const writer = await sqliteDialect.openBulkWriter(warehouse.knex, target);
        for (let batch = 0; batch < 100; batch++)
          await writer.write(Array.from({ length: 2000 }, (_, i) => [`ID${batch * 2000 + i}`, PAD]));
        await writer.close();
        await warehouse.knex.schema.alterTable('reg_cards', (t) => t.unique(['national_id']));
        if (outcome === 'fails') throw new Error('the source went away');
      });
      if (outcome === 'fails') await assert.rejects(load, /the source went away/);
      else await load;
      assert.deepEqual(await pragmas(), before);
      assert.equal(await countInMainFile(file, dir, 'reg_cards'), 200_000);
    });
  }
});
