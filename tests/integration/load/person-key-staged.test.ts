import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { dropStagedPersonIds, rebuildPersonKey, stageNewPersonIds } from '../../../warehouse/person-key.ts';
import { createTempDir, testDatabases } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId } from '../../support/registry-fixture.ts';

const [A, B, C] = [validId(701), validId(702), validId(703)];

describe("a reload's new persons are read before the swap's write lock (SQLite)", () => {
  let dir: string;
  let file: string;
  let ctx: AppContext;

  beforeEach(async () => {
    dir = await createTempDir('hub-staged-persons-');
    file = path.join(dir, 'hub.sqlite');
    ctx = openTestContext(`sqlite:${file}`, dir);
    await migrateWarehouse(ctx.knex);
    await ctx.knex.schema.createTable('reg_next', (t) => t.string('national_id'));
    await ctx.knex('reg_next').insert([A, B, C, null].map((national_id) => ({ national_id })));
  });

  afterEach(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  const persons = async () =>
    Object.fromEntries(
      (
        await ctx
          .knex('hub_persons')
          .orderBy('national_id')
          .select<Array<{ national_id: string; first_seen_at: string }>>('national_id', 'first_seen_at')
      ).map((p) => [p.national_id, p.first_seen_at]),
    );

  it('stages the IDs the key lacks while another connection holds the write lock, and the swap adds exactly those', async function () {
    this.timeout(10_000);
    await ctx.knex('hub_persons').insert({ national_id: A, first_seen_at: 'day 1' });
    const other = new Database(file);
    other.pragma('busy_timeout = 0');
    let staged: string | null;
    try {
      // A serving hub's turn of audit rows, or anything else writing: the staging does not wait for it.
      other.exec('BEGIN IMMEDIATE');
      staged = await stageNewPersonIds(ctx.knex, 'reg_next', 'national_id', false);
      other.exec('COMMIT');
      // Between the read and the swap another load adds B: the swap keeps its first sighting.
      other.prepare("INSERT INTO hub_persons (national_id, first_seen_at) VALUES (?, 'day 2')").run(B);
    } finally {
      other.close();
    }
    assert.ok(staged !== null);
    assert.deepEqual(
      await ctx.knex(staged).orderBy('national_id').pluck('national_id'),
      [B, C],
      'only the IDs the key lacked, without the empty one',
    );
    await ctx.knex.transaction((trx) =>
      rebuildPersonKey(
        trx,
        {
          table: 'reg',
          rowsIn: 'reg_next',
          nationalIdColumn: 'national_id',
          firstLoad: false,
          newIdsIn: staged,
        },
        'day 3',
      ),
    );
    assert.deepEqual(await persons(), { [A]: 'day 1', [B]: 'day 2', [C]: 'day 3' });
    await dropStagedPersonIds(ctx.knex, staged);
    await assert.rejects(ctx.knex(staged).count(), /no such table/);
  });

  it('stages nothing into an empty key, where every ID is new and the swap inserts them all itself', async () => {
    assert.equal(await stageNewPersonIds(ctx.knex, 'reg_next', 'national_id', false), null);
  });
});

describe('new persons are staged only on SQLite', () => {
  it('answers null on PostgreSQL: the swap reads the key in its own transaction there', async () => {
    const postgres = testDatabases.find((d) => d.name === 'postgres')!;
    const url = await postgres.createUrl();
    const dir = await createTempDir('hub-staged-persons-pg-');
    const ctx = openTestContext(url, dir);
    try {
      await migrateWarehouse(ctx.knex);
      await ctx.knex('hub_persons').insert({ national_id: A, first_seen_at: 'day 1' });
      await ctx.knex.schema.createTable('reg_next', (t) => t.string('national_id'));
      await ctx.knex('reg_next').insert([{ national_id: B }]);
      assert.equal(await stageNewPersonIds(ctx.knex, 'reg_next', 'national_id', false), null);
    } finally {
      await closeContext(ctx);
      await postgres.dropUrl(url);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
