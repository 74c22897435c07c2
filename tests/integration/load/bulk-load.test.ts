import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { runConnector } from '../../../connectors/run-connector.ts';
import { parseSqliteFilename } from '../../../warehouse/db.ts';
import { describeEachDatabase } from '../../support/databases.ts';
import { openPeopleHub, type PeopleHub } from '../../support/load-people-hub.ts';
import { badCheckDigitId, validId, type PersonSourceRow } from '../../support/registry-fixture.ts';

const ROWS = 60;

/** Row n of the source: every 7th has a wrong check digit, three others a bad date, an unknown code, no name. */
function sourceRow(n: number, surname: string): PersonSourceRow {
  const row: PersonSourceRow = {
    NATNO: n % 7 === 0 ? badCheckDigitId(n) : validId(n),
    NAME_AR: `${surname} ${n}`,
    SEX: n % 2 === 0 ? '2' : '1',
    DOB: `${String((n % 28) + 1).padStart(2, '0')}/03/1985`,
    UPDATED_AT: `2026-03-01T00:00:${String(n).padStart(2, '0')}`,
    DELETED: 0,
  };
  if (n === 11) row.DOB = '30/02/1985';
  if (n === 23) row.SEX = '7';
  if (n === 38) row.NAME_AR = null;
  return row;
}

const BAD = new Set([
  11,
  23,
  38,
  ...Array.from({ length: ROWS }, (_, i) => i + 1).filter((n) => n % 7 === 0),
]);

function expectedRows(surname: string) {
  return Array.from({ length: ROWS }, (_, i) => i + 1)
    .filter((n) => !BAD.has(n))
    .map((n) => ({
      national_id: validId(n),
      full_name: `${surname} ${n}`,
      gender: n % 2 === 0 ? 'F' : 'M',
      birth_date: `1985-03-${String((n % 28) + 1).padStart(2, '0')}`,
    }))
    .sort((a, b) => a.national_id.localeCompare(b.national_id));
}

describeEachDatabase('full loads in batches: every good row stored, every bad one kept as a reject', (db) => {
  let hub: PeopleHub;
  const tableRows = () =>
    hub.ctx
      .knex('reg_people')
      .select('national_id', 'full_name', 'gender', 'birth_date')
      .orderBy('national_id');

  before(async () => {
    const rows = Array.from({ length: ROWS }, (_, i) => sourceRow(i + 1, 'الأول'));
    hub = await openPeopleHub(db.url(), 'hub-bulk-load-', rows, { batch_size: 4 });
  });

  after(async () => {
    await hub?.close();
  });

  it('stores exactly the valid rows of 15 batches and rejects each bad row beside them with its reason and source row', async () => {
    const summary = await runConnector(await hub.connector(), hub.ctx, { full: true });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.deepEqual([summary.read, summary.inserted, summary.rejected], [ROWS, ROWS - BAD.size, BAD.size]);
    assert.deepEqual(await tableRows(), expectedRows('الأول'));

    const rejects = await hub.ctx
      .knex('hub_rejects')
      .where({ run_id: summary.run_id })
      .select<Array<{ source_key: string; reason: string; raw_row: string }>>(
        'source_key',
        'reason',
        'raw_row',
      );
    const byKey = new Map(rejects.map((r) => [r.source_key, r]));
    assert.equal(rejects.length, BAD.size);
    for (const n of BAD) {
      const natno = n % 7 === 0 ? badCheckDigitId(n) : validId(n);
      const reject = byKey.get(natno);
      assert.ok(reject, `row ${n} is recorded as a reject`);
      assert.deepEqual(JSON.parse(reject.raw_row), sourceRow(n, 'الأول'));
    }
    assert.match(byKey.get(badCheckDigitId(14))!.reason, /check digit/);
    assert.match(byKey.get(validId(11))!.reason, /birth_date: "30\/02\/1985" is not a valid date/);
    assert.match(byKey.get(validId(23))!.reason, /gender: "7" is not in the code list/);
    assert.match(byKey.get(validId(38))!.reason, /full_name: required value is missing/);

    const members = await hub.ctx
      .knex('hub_person_tables')
      .where({ table_name: 'reg_people' })
      .orderBy('national_id')
      .pluck('national_id');
    assert.deepEqual(
      members,
      expectedRows('الأول').map((r) => r.national_id),
    );
  });

  if (db.name === 'postgres')
    it("after a registry's first load, PostgreSQL plans with the person key's size, not the empty key of before", async () => {
      const counted = async (table: string) =>
        Number(
          (
            await hub.ctx
              .knex('pg_class')
              .where({ relname: table })
              .whereRaw('relnamespace = current_schema()::regnamespace')
              .first<{ reltuples: number }>('reltuples')
          ).reltuples,
        );
      const actual = async (table: string) =>
        Number((await hub.ctx.knex(table).count({ n: '*' }).first<{ n: string }>()).n);
      // hub_person_tables is a view over the registry tables here, planned from their statistics.
      for (const table of ['hub_persons', 'reg_people'])
        assert.equal(await counted(table), await actual(table), `${table}: the planner's row count`);
      // Analyzed before the swap, even where that ran beside the new persons' insert.
      const analyzed = await hub.ctx
        .knex('pg_stats')
        .where({ tablename: 'reg_people' })
        .whereRaw('schemaname = current_schema()')
        .pluck<string[]>('attname');
      assert.ok(analyzed.includes('national_id'), `columns with statistics: ${analyzed.join(', ')}`);
    });

  it('a source failing in the middle of a load, after batches were written, leaves the previous table and names the error', async () => {
    const before = await tableRows();
    // SQLite raises "integer overflow" when the read reaches row 30: a registry that breaks mid-read.
    await hub.define({
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: { filename: hub.sourceFile },
        query:
          'SELECT *, CASE WHEN rowid = 30 THEN abs(-9223372036854775808) ELSE 0 END AS CHECKED FROM people',
        cursor: 'UPDATED_AT',
      },
    });
    const failed = await runConnector(await hub.connector(), hub.ctx, { full: true });
    assert.equal(failed.status, 'failed');
    assert.match(failed.error ?? '', /integer overflow/);
    assert.deepEqual(await tableRows(), before);
    assert.equal(await hub.ctx.knex.schema.hasTable('reg_people__next'), false);
    const run = await hub.ctx
      .knex('hub_connector_runs')
      .where({ id: failed.run_id })
      .first<{ status: string }>();
    assert.equal(run.status, 'failed');

    await hub.define();
    const rerun = await runConnector(await hub.connector(), hub.ctx, { full: true });
    assert.equal(rerun.status, 'succeeded', rerun.error ?? '');
    assert.deepEqual(await tableRows(), before);
  });

  it('a row whose record key is empty is a reject, and the load goes on', async () => {
    await hub.define({
      target: { table: 'reg_people', key: ['national_id', 'full_name'] },
      columns: {
        national_id: { from: 'NATNO', required: true },
        full_name: { from: 'NAME_AR' },
        gender: { from: 'SEX', codes: { '1': 'M', '2': 'F' } },
        birth_date: { from: 'DOB', type: 'date', format: 'DD/MM/YYYY' },
      },
    });
    const summary = await runConnector(await hub.connector(), hub.ctx, { full: true });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    const reject = await hub.ctx
      .knex('hub_rejects')
      .where({ run_id: summary.run_id, source_key: `${validId(38)}|` })
      .first<{ reason: string }>();
    assert.match(reject.reason, /full_name: record key value is missing/);
    assert.equal((await tableRows()).length, ROWS - BAD.size);
    await hub.define();
  });

  if (db.name === 'sqlite') {
    it('when the writer thread fails mid-load (its table dropped under it), the previous table stays and the run names the error', async () => {
      await hub.define();
      const before = await tableRows();
      const file = parseSqliteFilename(db.url());
      let dropped = false;
      const failed = await runConnector(await hub.connector(), hub.ctx, {
        full: true,
        onProgress: () => {
          if (dropped) return;
          dropped = true;
          const other = new Database(file);
          other.pragma('busy_timeout = 15000');
          other.exec('DROP TABLE reg_people__next');
          other.close();
        },
      });
      assert.ok(dropped);
      assert.equal(failed.status, 'failed');
      assert.match(failed.error ?? '', /no such table: reg_people__next/);
      assert.deepEqual(await tableRows(), before);
      assert.equal(await hub.ctx.knex.schema.hasTable('reg_people__next'), false);

      const rerun = await runConnector(await hub.connector(), hub.ctx, { full: true });
      assert.equal(rerun.status, 'succeeded', rerun.error ?? '');
      assert.deepEqual(await tableRows(), before);
    });
  }
});
