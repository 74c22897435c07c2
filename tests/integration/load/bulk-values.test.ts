import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { runConnector, type RunSummary } from '../../../connectors/run-connector.ts';
import { parseSqliteFilename } from '../../../warehouse/db.ts';
import { describeEachDatabase } from '../../support/databases.ts';
import { openPeopleHub, type PeopleHub } from '../../support/load-people-hub.ts';
import {
  badCheckDigitId,
  validId,
  writePeopleSource,
  type PersonSourceRow,
} from '../../support/registry-fixture.ts';

/** Names with every character the bulk paths must carry through unchanged, beside plain ones. */
const NAMES = [
  'plain name',
  'عبد الله محمد',
  'tab\tinside',
  'new\nline',
  'carriage\rreturn',
  'back\\slash',
  '\\N',
  'all\\\t\n\rof them',
  'نص\tعربي\\مع\nفواصل',
];

const person = (n: number, name: string | null, natno = validId(n)): PersonSourceRow => ({
  NATNO: natno,
  NAME_AR: name,
  SEX: n % 2 === 0 ? '2' : '1',
  DOB: '01/03/1985',
  UPDATED_AT: `2026-03-01T00:00:${String(n % 60).padStart(2, '0')}`,
  DELETED: 0,
});

/**
 * Another writer, on a thread of its own, takes the warehouse's write lock and holds it for
 * `ms`; returns once it holds it, so that whatever this thread writes next waits for it.
 */
function holdWriteLockFromThread(file: string, ms: number): Promise<void> {
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const db = require('better-sqlite3')(workerData.file);
     db.pragma('busy_timeout = 15000');
     db.exec('BEGIN IMMEDIATE');
     Atomics.store(workerData.signal, 0, 1);
     Atomics.notify(workerData.signal, 0);
     Atomics.wait(workerData.signal, 0, 1, workerData.ms);
     db.exec('COMMIT');
     db.close();`,
    { eval: true, workerData: { file, signal, ms } },
  );
  Atomics.wait(signal, 0, 0, 15_000);
  return once(worker, 'exit').then(([code]) => assert.equal(code, 0));
}

describeEachDatabase('full loads store every value as the source has it, and keep every reject', (db) => {
  let hub: PeopleHub;
  const writeSource = (rows: PersonSourceRow[]) => {
    const source = new Database(hub.sourceFile);
    source.exec('DROP TABLE IF EXISTS people');
    source.close();
    writePeopleSource(hub.sourceFile, rows);
  };

  /** 450 people, every other one (225) with a wrong check digit in the national ID. */
  const everyOtherIdBad = () =>
    Array.from({ length: 450 }, (_, i) =>
      person(i + 1, `name ${i + 1}`, i % 2 === 0 ? badCheckDigitId(i + 1) : validId(i + 1)),
    );
  const countPeople = () =>
    hub.ctx
      .knex('reg_people')
      .count({ n: '*' })
      .first()
      .then((r) => Number(r?.n));

  /** The people table read until row `rowid`, where SQLite raises "integer overflow". */
  const sourceFailingAtRow = (rowid: number) => ({
    kind: 'sql',
    client: 'better-sqlite3',
    connection: { filename: hub.sourceFile },
    query: `SELECT *, CASE WHEN rowid = ${rowid} THEN abs(-9223372036854775808) ELSE 0 END AS CHECKED FROM people`,
    cursor: 'UPDATED_AT',
  });
  /** The run failed at the source, keeping a reject for each bad row (every other one) it had read. */
  const assertFailedKeepingRejects = async (failed: RunSummary, read: PersonSourceRow[]) => {
    assert.equal(failed.status, 'failed');
    assert.match(failed.error ?? '', /integer overflow/);
    const rejects = await hub.ctx.knex('hub_rejects').where({ run_id: failed.run_id }).pluck('source_key');
    assert.deepEqual(
      rejects.sort(),
      read
        .filter((_, i) => i % 2 === 0)
        .map((r) => r.NATNO)
        .sort(),
    );
  };

  before(async () => {
    hub = await openPeopleHub(db.url(), 'hub-bulk-values-', [person(1, 'first')]);
  });

  after(async () => {
    await hub?.close();
  });

  it('text with tabs, line breaks, backslashes and a literal \\N is stored exactly as the source has it, beside plain text and nulls', async () => {
    const rows = NAMES.map((name, i) => person(i + 1, name));
    rows.push({ ...person(NAMES.length + 1, null), SEX: '' });
    writeSource(rows);
    await hub.define({
      batch_size: 4,
      columns: {
        national_id: { from: 'NATNO', required: true },
        full_name: { from: 'NAME_AR', trim: false },
        gender: { from: 'SEX', codes: { '1': 'M', '2': 'F' } },
      },
    });
    const summary = await runConnector(await hub.connector(), hub.ctx, { full: true });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    const stored = await hub.ctx
      .knex('reg_people')
      .select('national_id', 'full_name', 'gender')
      .orderBy('national_id');
    assert.deepEqual(
      stored,
      rows.map((r, i) => ({
        national_id: r.NATNO,
        full_name: r.NAME_AR,
        gender: i === NAMES.length ? null : r.SEX === '2' ? 'F' : 'M',
      })),
    );
  });

  it('a boolean column stores true and false, and integer and number columns their values, in the same rows as text', async () => {
    writeSource([1, 2, 3, 4].map((n) => person(n, `name ${n}`)));
    await hub.define({
      batch_size: 3,
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: { filename: hub.sourceFile },
        query:
          "SELECT *, CASE WHEN SEX = '1' THEN 'yes' ELSE 'no' END AS ACTIVE, rowid * 1000 AS POINTS, rowid + 0.5 AS SCORE FROM people",
        cursor: 'UPDATED_AT',
      },
      columns: {
        national_id: { from: 'NATNO', required: true },
        full_name: { from: 'NAME_AR' },
        active: { from: 'ACTIVE', type: 'boolean' },
        points: { from: 'POINTS', type: 'integer' },
        score: { from: 'SCORE', type: 'number' },
      },
    });
    const summary = await runConnector(await hub.connector(), hub.ctx, { full: true });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    const stored = await hub.ctx
      .knex('reg_people')
      .select('national_id', 'full_name', 'active', 'points', 'score')
      .orderBy('national_id');
    assert.deepEqual(
      stored.map((r: Record<string, unknown>) => ({
        ...r,
        // SQLite keeps a boolean as 1 or 0, PostgreSQL's driver reads a bigint as text.
        active: r['active'] === true || r['active'] === 1,
        points: Number(r['points']),
      })),
      [1, 2, 3, 4].map((n) => ({
        national_id: validId(n),
        full_name: `name ${n}`,
        active: n % 2 === 1,
        points: n * 1000,
        score: n + 0.5,
      })),
    );
  });

  it('keeps every reject of a load with more rejects than one statement carries, each with its reason', async () => {
    // Every odd row has a wrong check digit: 225 rejects in batches of 50 rows.
    const rows = everyOtherIdBad();
    writeSource(rows);
    await hub.define({ batch_size: 50 });
    const summary = await runConnector(await hub.connector(), hub.ctx, { full: true });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.deepEqual([summary.inserted, summary.rejected], [225, 225]);
    const rejects = await hub.ctx
      .knex('hub_rejects')
      .where({ run_id: summary.run_id })
      .select<Array<{ source_key: string; reason: string }>>('source_key', 'reason');
    assert.deepEqual(
      rejects.map((r) => r.source_key).sort(),
      rows
        .filter((_, i) => i % 2 === 0)
        .map((r) => r.NATNO)
        .sort(),
    );
    for (const reject of rejects) assert.match(reject.reason, /check digit/);
    assert.equal(await countPeople(), 225);
  });

  it('a load whose source fails keeps the rejects of the rows read before the failure with the failed run, and the previous table', async () => {
    const rows = everyOtherIdBad();
    writeSource(rows);
    await hub.define({ batch_size: 50 });
    const loaded = await runConnector(await hub.connector(), hub.ctx, { full: true });
    assert.equal(loaded.status, 'succeeded', loaded.error ?? '');
    // SQLite raises "integer overflow" when the read reaches row 301, after six whole batches.
    await hub.define({ batch_size: 50, source: sourceFailingAtRow(301) });
    const failed = await runConnector(await hub.connector(), hub.ctx, { full: true });
    await assertFailedKeepingRejects(failed, rows.slice(0, 300));
    assert.equal(await countPeople(), 225);
  });

  if (db.name === 'sqlite') {
    it('keeps the rejects of batches the writer thread had not yet written when the source failed', async () => {
      const rows = everyOtherIdBad();
      writeSource(rows);
      // Rows 1-100 make two batches; the read fails at row 101 while the writer is held back.
      await hub.define({ batch_size: 50, source: sourceFailingAtRow(101) });
      const holder: { released?: Promise<void> } = {};
      const failed = await runConnector(await hub.connector(), hub.ctx, {
        full: true,
        onProgress: () => {
          holder.released ??= holdWriteLockFromThread(parseSqliteFilename(db.url()), 300);
        },
      });
      await holder.released;
      await assertFailedKeepingRejects(failed, rows.slice(0, 100));
    });

    it('gives the warehouse connection back with its usual page cache after a full load, and after a failed one', async () => {
      const cacheSize = async () =>
        Number((await hub.ctx.knex.raw<Array<{ cache_size: number }>>('PRAGMA cache_size'))[0]?.cache_size);
      const usual = await cacheSize();
      assert.equal(usual, -16384);
      writeSource([1, 2, 3, 4, 5].map((n) => person(n, `name ${n}`)));
      await hub.define({ batch_size: 2 });
      const loaded = await runConnector(await hub.connector(), hub.ctx, { full: true });
      assert.equal(loaded.status, 'succeeded', loaded.error ?? '');
      assert.equal(await cacheSize(), usual);

      await hub.define({ batch_size: 2, source: sourceFailingAtRow(4) });
      const failed = await runConnector(await hub.connector(), hub.ctx, { full: true });
      assert.equal(failed.status, 'failed');
      assert.equal(await cacheSize(), usual);
    });
  }
});
