import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteWorkerWriter } from '../../../warehouse/dialects/sqlite-bulk-writer.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import type { BulkTarget } from '../../../warehouse/dialects/index.ts';
import type { RejectRow } from '../../../warehouse/load/save-rejects.ts';
import { createTempDir } from '../../support/databases.ts';

// The writer thread is chosen only when a core is idle, so the full-load tests may not reach
// it on a busy machine: its promises are checked here on their own, on a real warehouse file.
describe('SQLite bulk-load writer thread', () => {
  let dir: string;
  let file: string;
  let warehouse: Warehouse;
  const target: BulkTarget = {
    table: 'reg_cards',
    columns: ['national_id', 'holder', 'active'],
    key: ['national_id'],
    booleanColumns: [2],
  };
  const reject = (run: number, key: string): RejectRow => [
    'reg-cards',
    run,
    key,
    'holder: required value is missing',
    '{}',
  ];

  beforeEach(async () => {
    dir = await createTempDir('hub-bulk-writer-');
    file = path.join(dir, 'hub.sqlite');
    warehouse = openWarehouse(`sqlite:${file}`);
    await migrateWarehouse(warehouse.knex);
    await warehouse.knex.schema.createTable('reg_cards', (t) => {
      t.string('national_id', 32).notNullable();
      t.string('holder', 100);
      t.boolean('active');
    });
  });

  const countRejects = async (run: number) =>
    Number((await warehouse.knex('hub_rejects').where({ run_id: run }).count({ n: '*' }).first())?.n);

  afterEach(async () => {
    await closeWarehouse(warehouse);
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every batch in order, booleans as 1 and 0, Arabic text unchanged, with the batches’ rejects', async () => {
    const writer = await openSqliteWorkerWriter(file, target);
    const expected: Array<[string, string | null, number]> = [];
    for (let batch = 0; batch < 6; batch++) {
      const rows = Array.from({ length: 50 }, (_, i) => {
        const n = batch * 50 + i;
        expected.push([`ID${n}`, n % 9 === 0 ? null : `حامل ${n}`, n % 2]);
        return [`ID${n}`, n % 9 === 0 ? null : `حامل ${n}`, n % 2 === 1];
      });
      await writer.write(rows, [reject(7, `BAD${batch}`)]);
    }
    await writer.close();
    const rows = await warehouse.knex('reg_cards').select('national_id', 'holder', 'active').orderBy('rowid');
    assert.deepEqual(
      rows.map((r: { national_id: string; holder: string | null; active: number }) => [
        r.national_id,
        r.holder,
        r.active,
      ]),
      expected,
    );
    const rejects = await warehouse
      .knex('hub_rejects')
      .where({ run_id: 7 })
      .orderBy('id')
      .pluck('source_key');
    assert.deepEqual(rejects, ['BAD0', 'BAD1', 'BAD2', 'BAD3', 'BAD4', 'BAD5']);
  });

  it('a batch of many pieces, long rows among them, is written whole and in order, with more rejects than a piece holds', async () => {
    const writer = await openSqliteWorkerWriter(file, target);
    // 1,000 rows of which ten carry 500,000 characters each: pieces by count and by length.
    const long = (n: number) => (n % 100 === 7 ? 'ك'.repeat(500_000) : `حامل ${n}`);
    const rows = Array.from({ length: 1000 }, (_, n) => [`ID${n}`, long(n), n % 2 === 0]);
    const rejects = Array.from({ length: 600 }, (_, n) => reject(8, `BAD${n}`));
    await writer.write(rows, rejects);
    await writer.close();
    const written = await warehouse.knex('reg_cards').select('national_id', 'holder').orderBy('rowid');
    assert.deepEqual(
      written.map((r: { national_id: string; holder: string }) => [r.national_id, r.holder.length]),
      rows.map((r) => [r[0], (r[1] as string).length]),
    );
    assert.equal(await countRejects(8), 600);
  });

  it('a row and a reject larger than the thread’s heap are written whole, as text, and so is all around them', async () => {
    const writer = await openSqliteWorkerWriter(file, target);
    // 20,000,000 Arabic characters: 40 MB as a string, over twice the thread's heap. Parsed or
    // cloned there, it stopped the whole process.
    const huge = 'ك'.repeat(20_000_000);
    const hugeReject: RejectRow = [
      'reg-cards',
      10,
      'BIG',
      'holder: longer than 100 characters',
      `{"holder":"${huge}"}`,
    ];
    await writer.write(
      [
        ['ID0', 'أ', true],
        ['ID1', huge, false],
        ['ID2', 'ب', true],
      ],
      [reject(10, 'BAD0'), hugeReject],
    );
    await writer.write([['ID3', `ج${'x'.repeat(5000)}`, false]]);
    await writer.close();
    const written = await warehouse
      .knex('reg_cards')
      .select('national_id', 'holder', 'active', warehouse.knex.raw('typeof(holder) as type'))
      .orderBy('rowid');
    assert.deepEqual(
      written.map((r: { national_id: string; holder: string; active: number; type: string }) => [
        r.national_id,
        r.holder === huge ? 'huge' : r.holder,
        r.active,
        r.type,
      ]),
      [
        ['ID0', 'أ', 1, 'text'],
        ['ID1', 'huge', 0, 'text'],
        ['ID2', 'ب', 1, 'text'],
        ['ID3', `ج${'x'.repeat(5000)}`, 0, 'text'],
      ],
    );
    const rejects = await warehouse
      .knex('hub_rejects')
      .where({ run_id: 10 })
      .orderBy('id')
      .select('source_key', 'reason', 'raw_row', warehouse.knex.raw('typeof(raw_row) as type'));
    assert.deepEqual(
      rejects.map((r: { source_key: string; reason: string; raw_row: string; type: string }) => [
        r.source_key,
        r.reason,
        r.raw_row === hugeReject[4] ? 'huge' : r.raw_row,
        r.type,
      ]),
      [
        ['BAD0', 'holder: required value is missing', '{}', 'text'],
        ['BIG', 'holder: longer than 100 characters', 'huge', 'text'],
      ],
    );
  });

  it('a row refused in a later piece leaves none of its batch, earlier pieces included', async () => {
    const writer = await openSqliteWorkerWriter(file, target);
    await writer.write([['ID0', 'أ', true]]);
    // Row 700 has no national ID: the table refuses it, in the batch's third piece.
    const rows = Array.from({ length: 1000 }, (_, n) => [n === 700 ? null : `ID${n + 1}`, 'ب', false]);
    await writer.write(rows, [reject(9, 'BAD')]).catch(() => undefined);
    await assert.rejects(writer.close(), /NOT NULL constraint failed/);
    await writer.abort();
    assert.deepEqual(await warehouse.knex('reg_cards').pluck('national_id'), ['ID0']);
    assert.equal(await countRejects(9), 0);
  });

  it('lets the hub’s own writes in between batches', async () => {
    const writer = await openSqliteWorkerWriter(file, target);
    await writer.write([['ID1', 'أ', true]]);
    await warehouse
      .knex('hub_rejects')
      .insert({ connector: 'c', run_id: 1, source_key: 'k', reason: 'r', raw_row: '{}' });
    await writer.write([['ID2', 'ب', false]]);
    await writer.close();
    assert.equal((await warehouse.knex('reg_cards').pluck('national_id')).length, 2);
  });

  it('a failed write in the thread rejects the next call with the database’s error', async () => {
    const writer = await openSqliteWorkerWriter(file, target);
    await writer.write([['ID1', 'أ', true]]);
    const other = new Database(file);
    other.pragma('busy_timeout = 15000');
    other.exec('DROP TABLE reg_cards');
    other.close();
    await writer.write([['ID2', 'ب', true]]).catch(() => undefined);
    await assert.rejects(
      (async () => {
        await writer.write([['ID3', 'ج', true]]);
        await writer.close();
      })(),
      /no such table: reg_cards/,
    );
    await writer.abort();
    assert.equal(await warehouse.knex.schema.hasTable('reg_cards'), false);
  });

  it('a writer aborted mid-load holds no lock: the hub writes at once', async () => {
    const writer = await openSqliteWorkerWriter(file, target);
    await writer.write([['ID1', 'أ', true]]);
    await writer.abort();
    // The batch handed over before the abort may or may not have been written; the lock is free either way.
    await warehouse.knex('reg_cards').insert({ national_id: 'ID9', holder: 'د', active: false });
    assert.ok((await warehouse.knex('reg_cards').pluck('national_id')).includes('ID9'));
  });

  it('a warehouse file that cannot be opened is an error at open, not a hung load', async () => {
    await assert.rejects(
      openSqliteWorkerWriter(path.join(dir, 'missing', 'hub.sqlite'), target),
      /directory does not exist|unable to open/,
    );
  });
});
