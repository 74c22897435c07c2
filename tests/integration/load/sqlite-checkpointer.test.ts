import assert from 'node:assert/strict';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startBackgroundCheckpoints } from '../../../warehouse/dialects/sqlite-checkpointer.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import { sortHelperThreads, sqliteDialect } from '../../../warehouse/dialects/sqlite.ts';
import { withRawConnection } from '../../../warehouse/dialects/raw-connection.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { createTempDir } from '../../support/databases.ts';
import { countInMainFile } from '../../support/sqlite-main-file.ts';

const PAD = 'x'.repeat(180);

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
        inFile = await countInMainFile(file, 'cards');
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
      threads: db.pragma('threads', { simple: true }),
    }));

  it('lets the index builds of a load sort on one helper thread a core, none under HUB_LOAD_THREADS=1, and restores the setting after', async () => {
    const before = await pragmas();
    for (const threads of ['auto', 1, 2] as const) {
      const during = await sqliteDialect.withFullLoadSettings!(warehouse.knex, pragmas, threads);
      assert.equal(during.threads, sortHelperThreads(threads), `HUB_LOAD_THREADS=${threads}`);
      assert.deepEqual(await pragmas(), before);
    }
    // Past the load's 4 MiB page cache the sort goes in pieces, which the helpers sort: a unique
    // index built so still finds the one duplicate among 400,000 keys, and builds without it.
    await warehouse.knex.schema.createTable('reg_pairs', (t) => t.string('national_id', 32));
    await warehouse.knex.raw(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 399999)
       INSERT INTO reg_pairs SELECT printf('ID%012d', (i * 7919) % 399999) FROM n`,
    );
    const unique = () => warehouse.knex.schema.alterTable('reg_pairs', (t) => t.unique(['national_id']));
    await assert.rejects(sqliteDialect.withFullLoadSettings!(warehouse.knex, unique, 2), (err: unknown) =>
      sqliteDialect.isUniqueViolation(err),
    );
    await warehouse.knex.raw(
      "DELETE FROM reg_pairs WHERE rowid = (SELECT max(rowid) FROM reg_pairs WHERE national_id = 'ID000000000000')",
    );
    await sqliteDialect.withFullLoadSettings!(warehouse.knex, unique, 2);
    assert.deepEqual(await warehouse.knex('reg_pairs').count({ n: '*' }).first(), { n: 399_999 });
  });

  it('counts the sort helpers from the cores', () => {
    assert.deepEqual(
      [1, 2, 4].map((cores) => [
        sortHelperThreads('auto', cores),
        sortHelperThreads(1, cores),
        sortHelperThreads(2, cores),
      ]),
      [
        [0, 0, 1],
        [2, 0, 2],
        [4, 0, 4],
      ],
    );
  });

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
      assert.equal(await countInMainFile(file, 'reg_cards'), 200_000);
    });
  }
});
