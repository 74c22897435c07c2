import assert from 'node:assert/strict';
import { runConnector } from '../../../connectors/run-connector.ts';
import type { AppContext } from '../../../server/context.ts';
import { describeEachDatabase } from '../../support/databases.ts';
import { openPeopleHub, type PeopleHub } from '../../support/load-people-hub.ts';
import { badCheckDigitId, execOnSource, validId, writePeopleSource } from '../../support/registry-fixture.ts';

const person = (
  n: number,
  name: string,
  updated: string,
  extra: Partial<{ SEX: string; DOB: string; DELETED: number }> = {},
) => ({
  NATNO: validId(n),
  NAME_AR: name,
  SEX: '1',
  DOB: '01/02/1990',
  UPDATED_AT: updated,
  DELETED: 0,
  ...extra,
});

describeEachDatabase('SQL connector: full and incremental loads', (db) => {
  let hub: PeopleHub;
  let ctx: AppContext;
  let sourceFile: string;

  const warehouseRows = () =>
    ctx.knex('reg_people').select('national_id', 'full_name', 'gender', 'birth_date').orderBy('national_id');
  const connector = () => hub.connector();

  before(async () => {
    hub = await openPeopleHub(db.url(), 'hub-load-', [
      person(1, 'محمد أحمد', '2026-01-01T00:00:01'),
      person(2, 'فاطمة علي', '2026-01-01T00:00:02', { SEX: '2' }),
      person(3, 'سارة يوسف', '2026-01-01T00:00:03', { SEX: '2', DOB: '31/02/1990' }),
      { ...person(4, 'خالد', '2026-01-01T00:00:04'), NATNO: badCheckDigitId(4) },
      person(5, 'ليلى', '2026-01-01T00:00:05', { SEX: '9' }),
      person(6, 'عمر حسن', '2026-01-01T00:00:06'),
      person(7, 'نور', '2026-01-01T00:00:07', { DELETED: 1 }),
    ]);
    ({ ctx, sourceFile } = hub);
  });

  after(async () => {
    await hub?.close();
  });

  it('loads valid rows in full, converts codes and dates, and keeps Arabic text intact', async () => {
    const summary = await runConnector(await connector(), ctx, { full: true });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.deepEqual(
      { read: summary.read, inserted: summary.inserted, rejected: summary.rejected },
      { read: 7, inserted: 3, rejected: 3 },
    );
    assert.deepEqual(await warehouseRows(), [
      { national_id: validId(1), full_name: 'محمد أحمد', gender: 'M', birth_date: '1990-02-01' },
      { national_id: validId(2), full_name: 'فاطمة علي', gender: 'F', birth_date: '1990-02-01' },
      { national_id: validId(6), full_name: 'عمر حسن', gender: 'M', birth_date: '1990-02-01' },
    ]);
    assert.equal(summary.watermark_to, '2026-01-01T00:00:07');
  });

  it('keeps each rejected row with its source key, reason and raw row', async () => {
    const rejects = await ctx
      .knex('hub_rejects')
      .where({ connector: 'reg-people' })
      .orderBy('source_key')
      .select('source_key', 'reason', 'raw_row');
    assert.equal(rejects.length, 3);
    const reasons = rejects.map((r: { reason: string }) => r.reason).sort();
    assert.match(reasons.join('\n'), /birth_date: "31\/02\/1990" is not a valid date \(DD\/MM\/YYYY\)/);
    assert.match(reasons.join('\n'), /national_id: national ID check digit is wrong/);
    assert.match(reasons.join('\n'), /gender: "9" is not in the code list/);
    const raw = JSON.parse(
      (rejects as Array<{ raw_row: string }>).find((r) => r.raw_row.includes('سارة'))!.raw_row,
    ) as { DOB: string };
    assert.equal(raw.DOB, '31/02/1990');
  });

  it('records the person key: one row per national ID with the tables that hold it', async () => {
    const members = await ctx
      .knex('hub_person_tables')
      .where({ table_name: 'reg_people' })
      .orderBy('national_id')
      .pluck('national_id');
    assert.deepEqual(members, [validId(1), validId(2), validId(6)]);
    const persons = await ctx
      .knex('hub_persons')
      .whereIn('national_id', members)
      .count({ n: '*' })
      .first<{ n: number | string }>();
    assert.equal(Number(persons?.n), 3);
  });

  it('applies only what changed since the watermark: inserts, updates and soft deletes', async () => {
    execOnSource(
      sourceFile,
      `UPDATE people SET NAME_AR = 'محمد أحمد الجديد', UPDATED_AT = '2026-02-01T00:00:00' WHERE NATNO = ?`,
      validId(1),
    );
    execOnSource(
      sourceFile,
      `UPDATE people SET DELETED = 1, UPDATED_AT = '2026-02-01T00:00:01' WHERE NATNO = ?`,
      validId(2),
    );
    writePeopleSource(sourceFile, [person(8, 'يوسف', '2026-02-01T00:00:02')]);
    const summary = await runConnector(await connector(), ctx);
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.equal(summary.mode, 'incremental');
    assert.deepEqual(
      {
        read: summary.read,
        inserted: summary.inserted,
        updated: summary.updated,
        deleted: summary.deleted,
        rejected: summary.rejected,
      },
      { read: 3, inserted: 1, updated: 1, deleted: 1, rejected: 0 },
    );
    assert.deepEqual(
      (await warehouseRows()).map((r: { national_id: string; full_name: string }) => [
        r.national_id,
        r.full_name,
      ]),
      [
        [validId(1), 'محمد أحمد الجديد'],
        [validId(6), 'عمر حسن'],
        [validId(8), 'يوسف'],
      ],
    );
    const members = await ctx
      .knex('hub_person_tables')
      .where({ table_name: 'reg_people' })
      .orderBy('national_id')
      .pluck('national_id');
    assert.deepEqual(members, [validId(1), validId(6), validId(8)]);
  });

  it('reads nothing when nothing changed', async () => {
    const summary = await runConnector(await connector(), ctx);
    assert.deepEqual(
      [summary.status, summary.read, summary.inserted, summary.updated, summary.deleted],
      ['succeeded', 0, 0, 0, 0],
    );
  });

  it('lists every run with its counts', async () => {
    const runs = await ctx
      .knex('hub_connector_runs')
      .where({ connector: 'reg-people' })
      .orderBy('id')
      .select('mode', 'status', 'rows_read');
    assert.deepEqual(
      runs.map((r: { mode: string; status: string; rows_read: number }) => [
        r.mode,
        r.status,
        Number(r.rows_read),
      ]),
      [
        ['full', 'succeeded', 7],
        ['incremental', 'succeeded', 3],
        ['incremental', 'succeeded', 0],
      ],
    );
  });
});
