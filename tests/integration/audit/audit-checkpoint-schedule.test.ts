import assert from 'node:assert/strict';
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { readConfig } from '../../../server/config.ts';
import { closeContext, openContext, type AppContext } from '../../../server/context.ts';
import { startAuditCheckpoints, verifyAuditLog } from '../../../server/services/audit-log-service.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { tamperWithAudit } from '../../support/audit-attacker.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';

const POLL_LIMIT_MS = 20_000;

describeEachDatabase('audit checkpoints on a schedule and at shutdown', (db) => {
  let dir: string;
  const contexts: AppContext[] = [];

  const openHubContext = () => {
    const config = readConfig(
      { HUB_DATA_DIR: dir, HUB_AUDIT_CHECKPOINT_SECONDS: '1' },
      { databaseUrl: db.url() },
    );
    const ctx = openContext(config, { logger: pino({ level: 'silent' }) });
    contexts.push(ctx);
    return ctx;
  };

  /** Row counts of the checkpoint files, oldest name first; a file still being written is not one yet. */
  const checkpointedCounts = async () => {
    const folder = path.join(dir, 'audit-checkpoints');
    const names = (await readdir(folder)).filter((n) => n.endsWith('.json')).sort();
    return Promise.all(
      names.map(
        async (n) => (JSON.parse(await readFile(path.join(folder, n), 'utf8')) as { rows: number }).rows,
      ),
    );
  };

  const appendReads = (ctx: AppContext, count: number) =>
    Promise.all(
      Array.from({ length: count }, (_, i) =>
        ctx.audit.append({ actor: 'naf-1', action: 'api.call', details: { i } }),
      ),
    );

  before(async () => {
    dir = await createTempDir('hub-audit-schedule-');
  });

  after(async () => {
    for (const ctx of contexts) await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('writes one at start, one for new rows on the schedule, and one with the last flushed rows at shutdown', async () => {
    const ctx = openHubContext();
    await migrateWarehouse(ctx.knex);
    await appendReads(ctx, 3);
    const checkpoints = await startAuditCheckpoints(ctx);
    assert.deepEqual(await checkpointedCounts(), [3]);

    await appendReads(ctx, 2);
    const deadline = Date.now() + POLL_LIMIT_MS;
    while (!(await checkpointedCounts()).includes(5) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(await checkpointedCounts(), [3, 5]);

    // Not awaited: the shutdown flushes the group commit before its last checkpoint.
    const last = appendReads(ctx, 4);
    await checkpoints.stop();
    await last;
    assert.deepEqual(await checkpointedCounts(), [3, 5, 9]);
    assert.deepEqual((await verifyAuditLog(ctx)).problems, []);
  });

  it('a hub started on a log whose tail was deleted writes no checkpoint that would hide it', async () => {
    const ctx = openHubContext();
    await tamperWithAudit(ctx.knex, () => ctx.knex('hub_audit').where('id', '>', 7).delete());
    const checkpoints = await startAuditCheckpoints(ctx);
    await checkpoints.stop();
    assert.deepEqual(await checkpointedCounts(), [3, 5, 9]);
    assert.match(
      (await verifyAuditLog(ctx)).problems.join('\n'),
      /rows deleted from the tail: .* 2 of them are missing/,
    );
  });
});
