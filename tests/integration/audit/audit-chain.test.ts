import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import type { Database } from 'better-sqlite3';
import type { Knex } from 'knex';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { AuditWriter } from '../../../warehouse/audit/audit-writer.ts';
import {
  computeAuditHash,
  recordAudit,
  type AuditEvent,
  type StoredAuditRow,
} from '../../../warehouse/audit/record-audit.ts';
import { verifyAuditChain } from '../../../warehouse/audit/verify-audit-chain.ts';
import { fetchWhoRead } from '../../../warehouse/audit/who-read.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { consumeRateWindowsOnSqlite } from '../../../warehouse/rate-windows.ts';
import { tamperWithAudit } from '../../support/audit-attacker.ts';
import { countAuditRows } from '../../support/audit-rows.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId } from '../../support/registry-fixture.ts';

const apiCall = (i: number, subjects: string[] = []): AuditEvent => ({
  actor: `naf-client-${i % 3}`,
  entity: 'NAF',
  action: 'api.call',
  target: `/api/v1/persons/${i}`,
  details: { status: 200, i },
  subjects,
});

const fetchMiddleRow = async (ctx: AppContext): Promise<StoredAuditRow & { id: number }> => {
  const row = await ctx.knex('hub_audit').orderBy('id').offset(5).first<StoredAuditRow>('*');
  return { ...row, id: Number(row.id) };
};

/** Each append transaction reads the chain's tail once, so tail reads count the transactions. */
function countTailReads(knex: Knex): { count: () => number; stop: () => void } {
  let reads = 0;
  const listener = (query: { sql: string }) => {
    if (/from [`"]hub_audit[`"] order by [`"]id[`"] desc/i.test(query.sql)) reads += 1;
  };
  knex.on('query', listener);
  return { count: () => reads, stop: () => void knex.off('query', listener) };
}

describeEachDatabase('audit chain', (db) => {
  let dir: string;
  let first: AppContext;
  let second: AppContext;

  before(async () => {
    dir = await createTempDir('hub-audit-');
    // Two contexts with their own connection pools behave like two hub processes on one warehouse.
    first = openTestContext(db.url(), dir);
    second = openTestContext(db.url(), dir);
    await migrateWarehouse(first.knex);
  });

  after(async () => {
    await closeContext(first);
    await closeContext(second);
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies an empty log', async () => {
    assert.deepEqual(await verifyAuditChain(first.knex), { ok: true, rows: 0 });
  });

  it('chains direct appends and many concurrent writer appends into one line', async () => {
    await recordAudit(first.knex, first.clock, [apiCall(0, [validId(0)]), apiCall(1)]);
    const writer = new AuditWriter(first.knex, first.clock);
    await Promise.all(Array.from({ length: 300 }, (_, i) => writer.append(apiCall(i, [validId(i % 10)]))));
    await writer.close();
    const rows = await countAuditRows(first.knex);
    assert.equal(rows, 302);
    assert.deepEqual(await verifyAuditChain(first.knex), { ok: true, rows });
    assert.deepEqual(await verifyAuditChain(first.knex, { pageSize: 7 }), { ok: true, rows });
  });

  it('writes the events that arrive during a flush together in the next transaction', async () => {
    const writer = new AuditWriter(first.knex, first.clock);
    const tailReads = countTailReads(first.knex);
    const early = writer.append(apiCall(1));
    await new Promise((resolve) => setImmediate(resolve));
    const burst = Array.from({ length: 50 }, (_, i) => writer.append(apiCall(100 + i)));
    await Promise.all([early, ...burst]);
    await writer.close();
    tailReads.stop();
    assert.equal(tailReads.count(), 2);
  });

  it('rejects every waiter of a failed flush, and the writer goes on', async () => {
    const writer = new AuditWriter(first.knex, first.clock);
    const before = await countAuditRows(first.knex);
    const unserializable: AuditEvent = { ...apiCall(7), details: { big: 10n } };
    const group = [writer.append(apiCall(5)), writer.append(unserializable), writer.append(apiCall(6))];
    const outcomes = await Promise.allSettled(group);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['rejected', 'rejected', 'rejected'],
    );
    await writer.append(apiCall(8));
    await writer.close();
    await assert.rejects(writer.append(apiCall(9)), /closed/);
    assert.equal(await countAuditRows(first.knex), before + 1);
    assert.equal((await verifyAuditChain(first.knex)).ok, true);
  });

  const decideRateWindow = (clientId: string) => (database: Database) =>
    consumeRateWindowsOnSqlite(database, {
      clientId,
      minuteStart: 0,
      dayStart: 0,
      perMinute: 1,
      perDay: 10,
    });
  const windowCount = async (clientId: string) =>
    (await first.knex('hub_rate_limits').where({ client_id: clientId }).first<{ minute_count: number }>())
      ?.minute_count ?? 0;

  if (db.name === 'sqlite')
    it('writes a decided event and its decision in one transaction, or neither', async () => {
      const writer = new AuditWriter(first.knex, first.clock);
      const before = await countAuditRows(first.knex);
      const decided = (clientId: string, i: number) =>
        writer.appendDecided({
          decide: decideRateWindow(clientId),
          eventFor: (counted) => apiCall(i, counted ? [validId(i)] : []),
        });
      // The second decision sees the first: the window of one is full.
      assert.deepEqual(await Promise.all([decided('decided-a', 1), decided('decided-a', 2)]), [true, false]);
      assert.equal(await windowCount('decided-a'), 1);
      const [read, refused] = await first
        .knex('hub_audit')
        .orderBy('id')
        .offset(before)
        .select<Array<{ subjects_hash: string }>>('subjects_hash');
      assert.notEqual(read?.subjects_hash, refused?.subjects_hash, 'each verdict picked its own event');

      // An event that cannot be written takes its decision with it.
      await assert.rejects(
        writer.appendDecided({
          decide: decideRateWindow('decided-b'),
          eventFor: () => ({ ...apiCall(3), details: { big: 10n } }),
        }),
      );
      assert.equal(await windowCount('decided-b'), 0);
      assert.equal(await countAuditRows(first.knex), before + 2);
      await writer.close();
      assert.equal((await verifyAuditChain(first.knex)).ok, true);
    });
  else
    it('offers decided events only where the decision and the event share a turn (SQLite)', async () => {
      const writer = new AuditWriter(first.knex, first.clock);
      assert.equal(writer.writesInTurns, false);
      await assert.rejects(
        writer.appendDecided({ decide: () => true, eventFor: () => apiCall(1) }),
        /SQLite/,
      );
      await writer.close();
    });

  it('keeps one chain when two processes append at the same time', async () => {
    const before = await countAuditRows(first.knex);
    const writers = [new AuditWriter(first.knex, first.clock), new AuditWriter(second.knex, second.clock)];
    await Promise.all([
      ...writers.flatMap((w, k) => Array.from({ length: 100 }, (_, i) => w.append(apiCall(k * 1000 + i)))),
      ...Array.from({ length: 10 }, (_, i) =>
        recordAudit((i % 2 === 0 ? first : second).knex, first.clock, apiCall(5000 + i)),
      ),
    ]);
    await Promise.all(writers.map((w) => w.close()));
    assert.deepEqual(await verifyAuditChain(second.knex), { ok: true, rows: before + 210 });
  });

  it('names a row whose details were edited', async () => {
    // As an attacker with DDL rights: the append-only triggers are dropped first.
    await tamperWithAudit(first.knex, async () => {
      const row = await fetchMiddleRow(first);
      await first.knex('hub_audit').where({ id: row.id }).update({ details: '{"status":404,"i":-1}' });
      const report = await verifyAuditChain(first.knex, { pageSize: 4 });
      await first.knex('hub_audit').where({ id: row.id }).update({ details: row.details });

      assert.ok(!report.ok);
      assert.equal(report.brokenAt, row.id);
      assert.match(report.reason, /edited/);
      assert.equal(report.rows, 5);
      assert.equal((await verifyAuditChain(first.knex)).ok, true);
    });
  });

  it('names the next row when an edited row was given a fresh hash', async () => {
    // As an attacker with DDL rights: the append-only triggers are dropped first.
    await tamperWithAudit(first.knex, async () => {
      const row = await fetchMiddleRow(first);
      const rewritten = { ...row, details: '{"status":404,"i":-1}' };
      await first
        .knex('hub_audit')
        .where({ id: row.id })
        .update({ details: rewritten.details, hash: computeAuditHash(row.prev_hash, rewritten) });
      const report = await verifyAuditChain(first.knex);
      await first.knex('hub_audit').where({ id: row.id }).update({ details: row.details, hash: row.hash });

      assert.ok(!report.ok);
      assert.equal(report.brokenAt, row.id + 1);
      assert.match(report.reason, new RegExp(`does not match the hash of row ${row.id}\\b`));
    });
  });

  it('does not mistake the ids of a rolled-back append for a deleted row', async () => {
    const rollback = first.knex.transaction(async (trx) => {
      await recordAudit(trx, first.clock, apiCall(1));
      throw new Error('rolled back');
    });
    await assert.rejects(rollback, /rolled back/);
    await recordAudit(first.knex, first.clock, apiCall(2));
    assert.deepEqual(await verifyAuditChain(first.knex), {
      ok: true,
      rows: await countAuditRows(first.knex),
    });
  });

  it('names the gap left by a deleted row', async () => {
    // As an attacker with DDL rights: the append-only triggers are dropped first.
    await tamperWithAudit(first.knex, async () => {
      const row = await fetchMiddleRow(first);
      const id = row.id;
      await first.knex('hub_audit').where({ id }).delete();
      const report = await verifyAuditChain(first.knex, { pageSize: 3 });
      await first.knex('hub_audit').insert(row);

      assert.ok(!report.ok);
      assert.equal(report.brokenAt, id + 1);
      assert.match(report.reason, new RegExp(`row ${id} is missing`));
      assert.equal(report.rows, 5);
      assert.deepEqual(await verifyAuditChain(first.knex), {
        ok: true,
        rows: await countAuditRows(first.knex),
      });
    });
  });

  it("tells who read a person's data, newest first, with the columns returned", async () => {
    const person = validId(4242);
    const other = validId(4243);
    await recordAudit(first.knex, first.clock, {
      actor: 'naf-0001',
      entity: 'NAF',
      action: 'api.call',
      target: `/api/v1/persons/${person}`,
      details: { status: 200, columns: ['cspd_personal_info.first_name', 'cspd_personal_info.birth_date'] },
      subjects: [person],
    });
    await recordAudit(first.knex, first.clock, {
      actor: 'ops',
      action: 'connector.run',
      target: 'cspd-personal-info',
    });
    const writer = new AuditWriter(first.knex, first.clock);
    await writer.append({
      actor: 'ssc-0002',
      entity: 'SSC',
      action: 'query.run',
      target: 'insured-widows',
      details: { columns: ['ssc_insured.monthly_salary'] },
      subjects: [person, other, person],
    });
    await writer.close();

    const rows = await fetchWhoRead(first.knex, person);
    assert.deepEqual(
      rows.map(({ at: _at, ...rest }) => rest),
      [
        {
          entity: 'SSC',
          actor: 'ssc-0002',
          action: 'query.run',
          target: 'insured-widows',
          columns: ['ssc_insured.monthly_salary'],
        },
        {
          entity: 'NAF',
          actor: 'naf-0001',
          action: 'api.call',
          target: `/api/v1/persons/${person}`,
          columns: ['cspd_personal_info.first_name', 'cspd_personal_info.birth_date'],
        },
      ],
    );
    assert.ok(rows.every((r) => !Number.isNaN(Date.parse(r.at))));
    assert.equal((await fetchWhoRead(first.knex, person, { limit: 1 }))[0]?.entity, 'SSC');
    assert.equal((await fetchWhoRead(first.knex, other)).length, 1);
    assert.deepEqual(await fetchWhoRead(first.knex, validId(4244)), []);
  });
  it('verifies a row written before subjects were chained as it was written, and still names an edit of it', async () => {
    // A row as the hub wrote it before migration 004: no subjects_hash, its hash without one.
    const tail = await first.knex('hub_audit').orderBy('id', 'desc').first<StoredAuditRow>('*');
    const legacy = {
      at: '2026-01-01T00:00:00.000Z',
      actor: 'naf-0001',
      entity: 'NAF',
      action: 'api.call',
      target: '/api/v1/persons/1',
      details: '{"status":200}',
      subjects_hash: null,
    };
    const hash = computeAuditHash(tail.hash, legacy);
    await first.knex('hub_audit').insert({ ...legacy, prev_hash: tail.hash, hash });
    assert.deepEqual(await verifyAuditChain(first.knex), {
      ok: true,
      rows: await countAuditRows(first.knex),
    });

    await tamperWithAudit(first.knex, async () => {
      await first.knex('hub_audit').where({ hash }).update({ actor: 'someone-else' });
      const report = await verifyAuditChain(first.knex);
      await first.knex('hub_audit').where({ hash }).update({ actor: legacy.actor });
      assert.ok(!report.ok);
      assert.equal(report.reason, 'row was edited: its hash does not match its contents');
    });
  });
});
