import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { recordAudit, type AuditEvent } from '../../../warehouse/audit/record-audit.ts';
import { indexWhoRead, verifyWhoReadIndex } from '../../../warehouse/audit/who-read-index.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../../warehouse/db.ts';
import { prepareOnce } from '../../../warehouse/dialects/sqlite-statements.ts';
import {
  findSqliteTurnWriter,
  SQLITE_PAUSE_BETWEEN_STEPS_MS,
  type TurnWrite,
} from '../../../warehouse/dialects/sqlite-turn-writer.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { createTempDir } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId } from '../../support/registry-fixture.ts';

const event = (i: number): AuditEvent => ({
  actor: 'naf-client',
  entity: 'NAF',
  action: 'api.call',
  target: `event-${i}`,
  details: { status: 200 },
  subjects: [validId(600 + (i % 9)), validId(700 + (i % 5))],
});

/** A serving hub's turn, reduced to a row per answer: what the turn writer commits before answers leave. */
const answers: TurnWrite<number, undefined> = {
  name: 'answers',
  write: (db, items) =>
    items.map((n) => {
      prepareOnce(db, 'INSERT INTO answers_written (n) VALUES (?)').run(n);
      return undefined;
    }),
};

describe('who read this person: the index beside a serving hub [sqlite]', () => {
  let dir: string;
  let ctx: AppContext;
  let serving: Warehouse;

  before(async () => {
    dir = await createTempDir('who-read-beside-turns-');
    const url = `sqlite:${path.join(dir, 'hub.sqlite')}`;
    ctx = openTestContext(url, dir);
    await migrateWarehouse(ctx.knex);
    const events = Array.from({ length: 240 }, (_, i) => event(i));
    for (let k = 0; k < events.length; k += 8) await recordAudit(ctx.knex, ctx.clock, events.slice(k, k + 8));
    serving = openWarehouse(url);
    await serving.knex.schema.createTable('answers_written', (t) => t.integer('n').notNullable());
  });

  after(async () => {
    await closeWarehouse(serving);
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it("writes a serving hub's turns between a merge's transactions, not after the merge", async () => {
    const turns = findSqliteTurnWriter(serving.knex);
    const written = new Set<number>();
    let submitted = 0;
    const stillWaiting: number[][] = [];
    const report = await indexWhoRead(ctx.knex, {
      runRows: 40,
      fanIn: 3,
      chunkRows: 12,
      flushTail: true,
      pauseMs: SQLITE_PAUSE_BETWEEN_STEPS_MS,
      beforeMergeStep: async (step) => {
        if (step !== 'copy') return;
        // Every answer submitted before the previous step is written by now.
        stillWaiting.push(Array.from({ length: submitted }, (_, n) => n).filter((n) => !written.has(n)));
        const n = submitted++;
        void turns.submit(answers, n).then(() => written.add(n));
        await Promise.resolve();
      },
    });
    assert.ok(report.merged >= 3, `runs were merged (${report.merged})`);
    assert.ok(submitted >= 6, `a turn was submitted at each of ${submitted} copy steps`);
    const waitingCounts = stillWaiting.map((waiting) => waiting.length);
    assert.deepEqual(
      waitingCounts,
      stillWaiting.map(() => 0),
      'answers still waiting at each copy step',
    );
    await turns.settle();
    assert.equal(written.size, submitted);
    assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
  });
});
