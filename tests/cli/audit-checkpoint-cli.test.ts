import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { closeContext, type AppContext } from '../../server/context.ts';
import { recordAudit } from '../../warehouse/audit/record-audit.ts';
import { migrateWarehouse } from '../../warehouse/migrations/migrate.ts';
import { tamperWithAudit } from '../support/audit-attacker.ts';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { openTestContext } from '../support/hub-context.ts';
import { validId } from '../support/registry-fixture.ts';
import { runHubCli } from '../support/run-hub-cli.ts';

describeEachDatabase('hub audit checkpoint and hub audit verify', (db) => {
  let dir: string;
  let ctx: AppContext;
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runHubCli([...args, '--db', db.url()], { HUB_DATA_DIR: dir, ...env });

  before(async () => {
    dir = await createTempDir('hub-audit-cli-');
    ctx = openTestContext(db.url(), dir);
    await migrateWarehouse(ctx.knex);
    for (let i = 0; i < 5; i++) {
      await recordAudit(ctx.knex, ctx.clock, { actor: 'naf-1', action: 'api.call', subjects: [validId(i)] });
    }
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('signs the head into the data folder with a key it keeps there, mode 0600, and verify holds the log to it', async () => {
    const written = await cli(['audit', 'checkpoint']);
    assert.equal(written.code, 0, written.stderr);
    const file = /^audit checkpoint written: 5 rows, (.+)$/m.exec(written.stdout)?.[1];
    assert.ok(file, written.stdout);
    assert.equal(path.dirname(file), path.join(dir, 'audit-checkpoints'));
    assert.equal((await stat(path.join(dir, 'secret-keys.json'))).mode & 0o777, 0o600);

    const again = await cli(['audit', 'checkpoint']);
    assert.equal(again.stdout.trim(), 'no new audit rows since the latest checkpoint');

    const ok = await cli(['audit', 'verify']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      new RegExp(
        `^audit chain ok: 5 rows; the checkpoint of .+ \\(5 rows, ${path.basename(file)}\\) holds$`,
        'm',
      ),
    );
  });

  it('exits 1 naming the rows deleted from the tail, and will not checkpoint the shortened log', async () => {
    const rows = await ctx.knex('hub_audit').orderBy('id').select<Array<Record<string, unknown>>>('*');
    const subjects = await ctx.knex('hub_audit_subjects').select<Array<Record<string, unknown>>>('*');
    const lastKept = Number(rows[2]!.id);
    await tamperWithAudit(ctx.knex, async () => {
      await ctx.knex('hub_audit_subjects').where('audit_id', '>', lastKept).delete();
      await ctx.knex('hub_audit').where('id', '>', lastKept).delete();
    });
    try {
      const broken = await cli(['audit', 'verify']);
      assert.equal(broken.code, 1);
      assert.equal(broken.stdout, '');
      assert.match(
        broken.stderr,
        new RegExp(
          `^hub: audit rows missing or rewritten: rows deleted from the tail: the checkpoint of .+ counted 5 rows ending with row ${Number(rows[4]!.id)}; 2 of them are missing, every row after row ${lastKept} up to row ${Number(rows[4]!.id)}$`,
          'm',
        ),
      );
      const refused = await cli(['audit', 'checkpoint']);
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /^hub: no new audit checkpoint written: rows deleted from the tail: .+; run hub audit verify$/m,
      );
    } finally {
      await tamperWithAudit(ctx.knex, async () => {
        await ctx.knex('hub_audit').where('id', '>', lastKept).delete();
        for (const row of rows.slice(3)) await ctx.knex('hub_audit').insert(row);
        await ctx.knex('hub_audit_subjects').delete();
        await ctx.knex('hub_audit_subjects').insert(subjects);
      });
    }
    assert.equal((await cli(['audit', 'verify'])).code, 0);
  });

  it('refuses a checkpoint folder that is a file, and an interval that is not a number of seconds, with one hub: line', async () => {
    const notAFolder = path.join(dir, 'not-a-folder');
    await writeFile(notAFolder, 'x');
    const folder = await cli(['audit', 'verify'], { HUB_AUDIT_CHECKPOINT_DIR: notAFolder });
    assert.equal(folder.code, 1);
    assert.equal(
      folder.stderr.trim(),
      `hub: cannot read the audit checkpoint folder ${notAFolder}: ENOTDIR: not a directory, scandir '${notAFolder}'`,
    );

    const interval = await cli(['audit', 'verify'], { HUB_AUDIT_CHECKPOINT_SECONDS: 'soon' });
    assert.equal(interval.code, 1);
    assert.match(
      interval.stderr.trim(),
      /^hub: invalid configuration: HUB_AUDIT_CHECKPOINT_SECONDS: [^\n]+$/,
    );

    const secret = await cli(['audit', 'verify'], { HUB_SECRET_KEY: 'too short' });
    assert.equal(secret.code, 1);
    assert.match(
      secret.stderr.trim(),
      /^hub: invalid configuration: HUB_SECRET_KEY: each key needs at least \d+ characters[^\n]*$/,
    );
  });
});
