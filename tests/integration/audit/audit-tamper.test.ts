import assert from 'node:assert/strict';
import { generateKeySync, type KeyObject } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { closeContext, type AppContext } from '../../../server/context.ts';
import {
  fetchCheckpointKeys,
  describeCheckpointedWarehouse,
  verifyAuditLog,
  writeCheckpointNow,
} from '../../../server/services/audit-log-service.ts';
import {
  fetchAuditHead,
  writeAuditCheckpoint,
  type CheckpointFile,
} from '../../../warehouse/audit/audit-checkpoints.ts';
import {
  computeAuditHash,
  GENESIS_HASH,
  recordAudit,
  type AuditEvent,
  type StoredAuditRow,
  type StoredSubjectRow,
} from '../../../warehouse/audit/record-audit.ts';
import { verifyAuditChain } from '../../../warehouse/audit/verify-audit-chain.ts';
import { fetchWhoRead } from '../../../warehouse/audit/who-read.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { restoreAuditGuards, tamperWithAudit } from '../../support/audit-attacker.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId } from '../../support/registry-fixture.ts';

const read = (i: number): AuditEvent => ({
  actor: `naf-client-${i % 2}`,
  entity: 'NAF',
  action: 'api.call',
  target: 'GET /api/v1/persons/{national_id}',
  details: { status: 200, i },
  subjects: [validId(i), validId(1000 + i)],
});

describeEachDatabase(
  'audit log: tampering is refused, or caught by verify and the signed checkpoints',
  (db) => {
    let dir: string;
    let ctx: AppContext;
    let key: KeyObject;
    let keys: KeyObject[];
    let rows: StoredAuditRow[];
    let subjects: StoredSubjectRow[];
    let anchor: CheckpointFile;

    const fetchRows = () => ctx.knex('hub_audit').orderBy('id').select<StoredAuditRow[]>('*');
    const fetchSubjects = () =>
      ctx.knex('hub_audit_subjects').orderBy(['audit_id', 'national_id']).select<StoredSubjectRow[]>('*');
    const problems = async () => (await verifyAuditLog(ctx)).problems;

    /** Puts every row back as it was before the test tampered, as an attacker with DDL rights could. */
    const restoreLog = () =>
      tamperWithAudit(ctx.knex, async () => {
        await ctx.knex('hub_audit_subjects').delete();
        await ctx.knex('hub_audit').delete();
        for (const row of rows) await ctx.knex('hub_audit').insert(row);
        await ctx.knex('hub_audit_subjects').insert(subjects);
      });

    before(async () => {
      dir = await createTempDir('hub-audit-tamper-');
      ctx = openTestContext(db.url(), dir);
      await migrateWarehouse(ctx.knex);
      for (let i = 0; i < 12; i++) await recordAudit(ctx.knex, ctx.clock, read(i));
      keys = fetchCheckpointKeys(ctx);
      key = keys[0]!;
      // An earlier checkpoint and the latest one: verify compares with the latest.
      const first = await writeCheckpointNow(ctx, keys);
      assert.ok(first);
      for (let i = 12; i < 20; i++) await recordAudit(ctx.knex, ctx.clock, read(i));
      const latest = await writeCheckpointNow(ctx, keys);
      assert.ok(latest);
      anchor = latest;
      rows = await fetchRows();
      subjects = await fetchSubjects();
      assert.equal(anchor.checkpoint.rows, 20);
    });

    afterEach(async () => {
      // Every test leaves the log as it found it, and verify agrees.
      for (const name of await readdir(ctx.config.auditCheckpoints.dir)) {
        if (name.includes('-2099')) await rm(path.join(ctx.config.auditCheckpoints.dir, name));
      }
      assert.deepEqual(await problems(), []);
    });

    after(async () => {
      await closeContext(ctx);
      await rm(dir, { recursive: true, force: true });
    });

    it('verifies the untouched log against its latest checkpoint', async () => {
      const report = await verifyAuditLog(ctx);
      assert.deepEqual(report.problems, []);
      assert.equal(report.rows, 20);
      assert.equal(report.checkpoint?.file, anchor.file);
    });

    it('the database refuses to update, delete or truncate audit rows and subject rows', async () => {
      const refused = /append-only|permission denied/;
      const id = rows[3]!.id;
      await assert.rejects(ctx.knex('hub_audit').where({ id }).update({ details: '{}' }), refused);
      await assert.rejects(ctx.knex('hub_audit').where('id', '>', rows[15]!.id).delete(), refused);
      await assert.rejects(ctx.knex('hub_audit').delete(), refused);
      await assert.rejects(
        ctx
          .knex('hub_audit_subjects')
          .where({ audit_id: id })
          .update({ national_id: validId(999) }),
        refused,
      );
      await assert.rejects(ctx.knex('hub_audit_subjects').where({ audit_id: id }).delete(), refused);
      if (db.name === 'postgres') {
        await assert.rejects(ctx.knex.raw('TRUNCATE hub_audit_subjects, hub_audit'), refused);
      }
      assert.deepEqual(await fetchRows(), rows);
      assert.deepEqual(await fetchSubjects(), subjects);
    });

    it('the triggers refuse on their own, for a role whose privileges could not be revoked', async () => {
      if (db.name === 'postgres') {
        await ctx.knex.raw('GRANT UPDATE, DELETE, TRUNCATE ON hub_audit, hub_audit_subjects TO CURRENT_USER');
      }
      try {
        const trigger = /hub_audit(_subjects)? is append-only: rows may not be updated or deleted/;
        await assert.rejects(
          ctx.knex('hub_audit').where({ id: rows[3]!.id }).update({ details: '{}' }),
          trigger,
        );
        await assert.rejects(ctx.knex('hub_audit').delete(), trigger);
        await assert.rejects(ctx.knex('hub_audit_subjects').update({ national_id: validId(999) }), trigger);
        await assert.rejects(ctx.knex('hub_audit_subjects').delete(), trigger);
        if (db.name === 'postgres') await assert.rejects(ctx.knex.raw('TRUNCATE hub_audit'), trigger);
      } finally {
        await restoreAuditGuards(ctx.knex);
      }
      assert.deepEqual(await fetchRows(), rows);
    });

    it('names the rows deleted from the tail, which the chain alone cannot see', async () => {
      await tamperWithAudit(ctx.knex, async () => {
        const kept = rows[16]!;
        await ctx.knex('hub_audit_subjects').where('audit_id', '>', kept.id).delete();
        await ctx.knex('hub_audit').where('id', '>', kept.id).delete();
      });
      try {
        // What is left is a well-linked chain: only the checkpoint knows rows are missing.
        assert.deepEqual(await verifyAuditChain(ctx.knex), { ok: true, rows: 17 });
        const found = await problems();
        assert.equal(found.length, 1, found.join('\n'));
        assert.match(
          found[0]!,
          new RegExp(
            `^audit rows missing or rewritten: rows deleted from the tail: the checkpoint of ${anchor.checkpoint.at} ` +
              `\\(${path.basename(anchor.file)}\\) counted 20 rows ending with row ${Number(rows[19]!.id)}; ` +
              `3 of them are missing, every row after row ${Number(rows[16]!.id)} up to row ${Number(rows[19]!.id)}$`,
          ),
        );
        // Nor will the hub sign the shortened log: the old checkpoints stay the evidence.
        await assert.rejects(
          writeCheckpointNow(ctx, keys),
          /no new audit checkpoint written: rows deleted from the tail/,
        );
      } finally {
        await restoreLog();
      }
    });

    it('does not bless a row deleted before the latest checkpoint: the next one counts the rows the log should hold, and verify names both', async () => {
      const deleted = rows[5]!;
      await tamperWithAudit(ctx.knex, async () => {
        await ctx.knex('hub_audit_subjects').where({ audit_id: deleted.id }).delete();
        await ctx.knex('hub_audit').where({ id: deleted.id }).delete();
      });
      let next: CheckpointFile | null = null;
      try {
        await recordAudit(ctx.knex, ctx.clock, read(20));
        // The head the latest checkpoint named is still there with its hash: the hub signs the new head.
        next = await writeCheckpointNow(ctx, keys);
        assert.ok(next);
        assert.equal(next.checkpoint.rows, 21);
        assert.equal(
          await ctx
            .knex('hub_audit')
            .count({ n: '*' })
            .first()
            .then((r) => Number(r?.n)),
          20,
        );
        const found = await problems();
        assert.equal(found.length, 2, found.join('\n'));
        assert.match(found[0]!, new RegExp(`^audit chain broken at row ${Number(rows[6]!.id)}: `));
        assert.match(
          found[1]!,
          /^audit rows missing or rewritten: .* counted 21 rows .*; the log now holds 20 rows up to it \(deleted rows\)$/,
        );
      } finally {
        if (next !== null) await rm(next.file);
        await restoreLog();
      }
    });

    it('names a log whose rows were all deleted', async () => {
      await tamperWithAudit(ctx.knex, async () => {
        await ctx.knex('hub_audit_subjects').delete();
        await ctx.knex('hub_audit').delete();
      });
      try {
        assert.deepEqual(await verifyAuditChain(ctx.knex), { ok: true, rows: 0 });
        const found = await problems();
        assert.equal(found.length, 1, found.join('\n'));
        assert.match(
          found[0]!,
          /all rows are missing: the checkpoint of .* counted 20 rows .*; the audit log is empty$/,
        );
      } finally {
        await restoreLog();
      }
    });

    it('names a log emptied by TRUNCATE (on SQLite, an unqualified DELETE, its truncate)', async () => {
      await tamperWithAudit(ctx.knex, async () => {
        if (db.name === 'postgres') await ctx.knex.raw('TRUNCATE hub_audit_subjects, hub_audit');
        else {
          await ctx.knex.raw('DELETE FROM hub_audit_subjects');
          await ctx.knex.raw('DELETE FROM hub_audit');
        }
      });
      try {
        assert.equal((await fetchAuditHead(ctx.knex)).rows, 0);
        assert.match((await problems()).join('\n'), /all rows are missing/);
      } finally {
        await restoreLog();
      }
    });

    it('names the event whose "who read this person" rows were edited, deleted or added', async () => {
      const event = rows[5]!;
      const [subject] = subjects.filter((s) => Number(s.audit_id) === Number(event.id));
      assert.ok(subject);
      const tampering: Array<[string, () => Promise<unknown>]> = [
        [
          'edited',
          () =>
            ctx
              .knex('hub_audit_subjects')
              .where(subject)
              .update({ national_id: validId(777) }),
        ],
        ['deleted', () => ctx.knex('hub_audit_subjects').where(subject).delete()],
        [
          'added',
          () => ctx.knex('hub_audit_subjects').insert({ audit_id: event.id, national_id: validId(778) }),
        ],
      ];
      for (const [what, tamper] of tampering) {
        await tamperWithAudit(ctx.knex, tamper);
        try {
          const found = await problems();
          assert.equal(found.length, 1, `${what}: ${found.join('\n')}`);
          assert.match(
            found[0]!,
            new RegExp(
              `^audit chain broken at row ${Number(event.id)}: its subject rows \\(who read whom\\) were edited, added or deleted`,
            ),
            what,
          );
        } finally {
          await restoreLog();
        }
      }
    });

    it('names subject rows that point at an event the log does not hold', async () => {
      const beyond = Number(rows[19]!.id) + 5;
      await tamperWithAudit(ctx.knex, () =>
        ctx.knex('hub_audit_subjects').insert({ audit_id: beyond, national_id: validId(779) }),
      );
      try {
        assert.deepEqual(await problems(), [
          `audit chain broken at row ${beyond}: subject rows name event ${beyond}, which is not in the log (added, or their event was deleted)`,
        ]);
      } finally {
        await restoreLog();
      }
    });

    it('names an edited row, and a chain rehashed after the edit is still caught by the checkpoint', async () => {
      const target = rows[8]!;
      const hidden = read(8);
      // The attacker hides a read: the row's subjects and details go, and every later hash is recomputed.
      await tamperWithAudit(ctx.knex, async () => {
        await ctx.knex('hub_audit').where({ id: target.id }).update({ details: '{"status":404}' });
        const edited = await problems();
        assert.deepEqual(edited, [
          `audit chain broken at row ${Number(target.id)}: row was edited: its hash does not match its contents`,
        ]);

        await ctx.knex('hub_audit_subjects').where({ audit_id: target.id }).delete();
        let prevHash = target.prev_hash;
        for (const row of rows.slice(8)) {
          const fields =
            row.id === target.id ? { ...row, details: '{"status":404}', subjects_hash: null } : row;
          const hash = computeAuditHash(prevHash, fields);
          await ctx.knex('hub_audit').where({ id: row.id }).update({
            details: fields.details,
            subjects_hash: fields.subjects_hash,
            prev_hash: prevHash,
            hash,
          });
          prevHash = hash;
        }
      });
      try {
        assert.deepEqual(await fetchWhoRead(ctx.knex, hidden.subjects![0]!), []);
        assert.deepEqual(await verifyAuditChain(ctx.knex), { ok: true, rows: 20 });
        const found = await problems();
        assert.equal(found.length, 1, found.join('\n'));
        assert.match(
          found[0]!,
          new RegExp(
            `^audit rows missing or rewritten: the chain was rewritten: .*row ${Number(rows[19]!.id)} now has hash [0-9a-f]{64}$`,
          ),
        );
      } finally {
        await restoreLog();
      }
    });

    it('names a bad checkpoint file beside good ones, and the good ones still catch a deleted tail', async () => {
      const folder = ctx.config.auditCheckpoints.dir;
      const garbage = path.join(folder, 'audit-checkpoint-20990101T000000000Z-000000000001.json');
      const edited = path.join(folder, 'audit-checkpoint-20990101T000000001Z-000000000002.json');
      const notObject = path.join(folder, 'audit-checkpoint-20990101T000000002Z-000000000003.json');
      await writeFile(garbage, '{"version": 1, "rows": ');
      // A copy of the latest checkpoint that claims fewer rows, with the signature left as it was.
      const copy = JSON.parse(await readFile(anchor.file, 'utf8')) as Record<string, unknown>;
      await writeFile(edited, JSON.stringify({ ...copy, rows: 17 }));
      await writeFile(notObject, '[1, 2, 3]');
      assert.deepEqual(await problems(), [
        `audit checkpoint file ${garbage} is not JSON`,
        `audit checkpoint file ${edited} its signature does not verify (forged, edited, or signed with another key)`,
        `audit checkpoint file ${notObject} is not a checkpoint (fields missing or of the wrong type)`,
      ]);

      await tamperWithAudit(ctx.knex, async () => {
        await ctx.knex('hub_audit_subjects').where('audit_id', '>', rows[17]!.id).delete();
        await ctx.knex('hub_audit').where('id', '>', rows[17]!.id).delete();
      });
      try {
        const found = await problems();
        assert.equal(found.length, 4, found.join('\n'));
        assert.match(found[3]!, /rows deleted from the tail: .* 2 of them are missing/);
      } finally {
        await restoreLog();
      }
    });

    it('names a forged checkpoint that would bless a shortened log, and still catches the deletion', async () => {
      await tamperWithAudit(ctx.knex, async () => {
        await ctx.knex('hub_audit_subjects').where('audit_id', '>', rows[9]!.id).delete();
        await ctx.knex('hub_audit').where('id', '>', rows[9]!.id).delete();
      });
      try {
        // The attacker signs the shortened log's head with a key of their own, as a newer checkpoint.
        const head = await fetchAuditHead(ctx.knex);
        const forged = await writeAuditCheckpoint(
          ctx.config.auditCheckpoints.dir,
          generateKeySync('hmac', { length: 256 }),
          {
            warehouse: describeCheckpointedWarehouse(ctx),
            at: '2099-01-01T00:00:00.000Z',
            rows: head.rows,
            head_id: head.headId,
            head_hash: head.headHash,
          },
        );
        const found = await problems();
        assert.equal(found.length, 2, found.join('\n'));
        assert.equal(
          found[0],
          `audit checkpoint file ${forged.file} its signature does not verify (forged, edited, or signed with another key)`,
        );
        assert.match(found[1]!, /rows deleted from the tail: .* 10 of them are missing/);
      } finally {
        await restoreLog();
      }
    });

    it('a checkpoint signed with the real key but moved from another warehouse does not count here', async () => {
      const other = await writeAuditCheckpoint(ctx.config.auditCheckpoints.dir, key, {
        warehouse: 'sqlite:/elsewhere/hub.sqlite',
        at: '2099-01-01T00:00:00.000Z',
        rows: 500,
        head_id: 500,
        head_hash: GENESIS_HASH,
      });
      try {
        const report = await verifyAuditLog(ctx);
        assert.deepEqual(report.problems, []);
        assert.equal(report.checkpoint?.file, anchor.file);
      } finally {
        await rm(other.file);
      }
    });
  },
);
