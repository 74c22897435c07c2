import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import Database from 'better-sqlite3';
import pino from 'pino';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { recordAudit, type AuditEvent } from '../../../warehouse/audit/record-audit.ts';
import {
  fetchIndexedUpTo,
  indexWhoRead,
  verifyWhoReadIndex,
  WHO_READ_RUNS,
  WHO_READ_TABLE,
  type WhoReadIndexOptions,
} from '../../../warehouse/audit/who-read-index.ts';
import { fetchWhoRead } from '../../../warehouse/audit/who-read.ts';
import { dialectOf } from '../../../warehouse/dialects/index.ts';
import { sqliteFilename } from '../../../warehouse/dialects/sqlite.ts';
import { closeWarehouse, openWarehouse } from '../../../warehouse/db.ts';
import { inWriteTransaction } from '../../../warehouse/write-transaction.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import * as whoReadRuns from '../../../warehouse/migrations/018-who-read-runs.ts';
import { startWhoReadIndexing } from '../../../server/services/who-read-indexing.ts';
import {
  startHubWhoReadIndexing,
  startWhoReadIndexingThread,
} from '../../../server/services/who-read-index-thread.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { createManualClock, openTestContext } from '../../support/hub-context.ts';
import { validId } from '../../support/registry-fixture.ts';
import { waitFor } from '../../support/wait-for.ts';

const PERSONS = 12;
const person = (p: number) => validId(500 + p);

/** Event `i` returned a pseudo-random set of persons; which ones is what every check compares with. */
function subjectsOf(i: number): string[] {
  const subjects: string[] = [];
  for (let p = 0; p < PERSONS; p += 1) if ((i * 7 + p * 13 + i * p) % 5 < 2) subjects.push(person(p));
  return subjects;
}

const read = (i: number): AuditEvent => ({
  actor: 'naf-client',
  entity: 'NAF',
  action: 'api.call',
  target: `event-${i}`,
  details: { status: 200 },
  subjects: subjectsOf(i),
});

/** A pass that fails fails the test that looks at the index next; nothing to log meanwhile. */
const quietLog = {
  merged: () => undefined,
  failed: () => undefined,
  driver: () => undefined,
  exited: () => undefined,
};

/** Small runs, merged three at a time, a few rows per transaction: every path of the index in a few hundred events. */
const SMALL: WhoReadIndexOptions = { runRows: 40, fanIn: 3, chunkRows: 12 };

describeEachDatabase('who read this person: the index of sorted runs', (db) => {
  let dir: string;
  let ctx: AppContext;
  let written = 0;

  /** The events written so far that returned this person, as the log was told, newest first. */
  const expected = (nationalId: string) => {
    const events: string[] = [];
    for (let i = written - 1; i >= 0; i -= 1)
      if (subjectsOf(i).includes(nationalId)) events.push(`event-${i}`);
    return events;
  };
  const answered = async (nationalId: string) =>
    (await fetchWhoRead(ctx.knex, nationalId, { limit: 10_000 })).map((row) => row.target);
  /** Every person's who-read answer is exactly the events that returned them. */
  const assertAnswersExact = async (when: string) => {
    for (let p = 0; p < PERSONS; p += 1)
      assert.deepEqual(await answered(person(p)), expected(person(p)), `${when}: person ${p}`);
  };
  const write = async (count: number) => {
    const events = Array.from({ length: count }, (_, k) => read(written + k));
    // Several events per transaction, as a serving hub's turns write them.
    for (let k = 0; k < events.length; k += 7) await recordAudit(ctx.knex, ctx.clock, events.slice(k, k + 7));
    written += count;
  };
  const liveRuns = () =>
    ctx
      .knex(WHO_READ_RUNS)
      .where({ state: 'live' })
      .orderBy('run')
      .select<Array<{ run: number; level: number }>>('run', 'level');
  /** A warehouse of the same kind that cannot be opened: a folder, a database never created. */
  const unreachableUrl = () =>
    db.name === 'sqlite'
      ? `sqlite:${dir}`
      : db.url().replace(/\/hub_test_[0-9a-f]+/, '/hub_test_never_created');
  const countRows = async (table: string) =>
    Number((await ctx.knex(table).count<Array<{ n: number | string }>>({ n: '*' }))[0]?.n);

  /**
   * What a stopped indexing leaves: no merge half-made, no pass after the stop, every answer
   * exact, and an index that a final pass completes and verifies.
   */
  const assertStoppedCleanly = async (noMergeLeft: string, when: string) => {
    assert.deepEqual(
      await ctx.knex(WHO_READ_RUNS).where({ state: 'building' }).pluck('run'),
      [],
      noMergeLeft,
    );
    const runs = await countRows(WHO_READ_RUNS);
    await write(100);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await countRows(WHO_READ_RUNS), runs, 'no pass after stop');
    await assertAnswersExact(when);
    await indexWhoRead(ctx.knex, { ...SMALL, flushTail: true });
    assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
  };

  before(async () => {
    dir = await createTempDir('who-read-index-');
    ctx = openTestContext(db.url(), dir);
    await migrateWarehouse(ctx.knex);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('answers exactly the events that returned each person before anything is indexed', async () => {
    await write(65);
    assert.equal(await countRows(WHO_READ_TABLE), 0);
    await assertAnswersExact('all in the tail');
  });

  it('answers the same from runs and the tail beside them, and a short tail waits for the next run', async () => {
    const report = await indexWhoRead(ctx.knex, { ...SMALL, fanIn: 100 });
    assert.ok(report.indexed > 0, 'some rows went into runs');
    const subjects = await countRows('hub_audit_subjects');
    assert.ok(report.indexed < subjects, 'the tail shorter than a run was left for later');
    assert.ok((await liveRuns()).length >= 2);
    await assertAnswersExact('runs and a tail');
  });

  it('answers the same before, during and after every transaction of the merges', async () => {
    await write(200);
    const steps: string[] = [];
    const report = await indexWhoRead(ctx.knex, {
      ...SMALL,
      beforeMergeStep: async (step) => {
        steps.push(step);
        await assertAnswersExact(`before a merge's ${step}`);
      },
    });
    assert.ok(report.merged >= 6, `runs were merged (${report.merged})`);
    assert.ok(report.dropped > 0, 'the rows of merged runs were deleted');
    for (const step of ['copy', 'switch', 'drop']) assert.ok(steps.includes(step), `a ${step} step ran`);
    assert.ok(new Set((await liveRuns()).map((r) => r.level)).size >= 2, 'runs of more than one level');
    await assertAnswersExact('after the merges');
    assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
  });

  it("keeps no row twice: after a full pass the index holds the log's subject rows once each", async () => {
    await indexWhoRead(ctx.knex, { ...SMALL, flushTail: true });
    assert.equal(await countRows(WHO_READ_TABLE), await countRows('hub_audit_subjects'));
    await assertAnswersExact('all indexed');
  });

  it('a pass with nothing due finishes while a writer elsewhere holds the lock: it takes no lock to learn it', async () => {
    await write(3);
    const other = openWarehouse(db.url());
    let release: () => void = () => undefined;
    let held!: () => void;
    const lockHeld = new Promise<void>((resolve) => (held = resolve));
    const holder = inWriteTransaction(other.knex, async (trx) => {
      await dialectOf(trx).lockUntilCommit(trx, WHO_READ_RUNS);
      held();
      await new Promise<void>((resolve) => (release = resolve));
    });
    try {
      await Promise.race([lockHeld, holder]);
      const order: string[] = [];
      const pass = indexWhoRead(ctx.knex, SMALL).then((report) => {
        order.push('pass');
        return report;
      });
      // Long enough for any pass that needs nothing; one waiting for the lock waits past it.
      await Promise.race([pass, new Promise((resolve) => setTimeout(resolve, 3000))]);
      order.push('released');
      release();
      assert.deepEqual(order, ['pass', 'released'], 'the pass finished before the lock was released');
      assert.deepEqual(await pass, { indexed: 0, merged: 0, dropped: 0 });
    } finally {
      release();
      await holder;
      await closeWarehouse(other);
    }
    await assertAnswersExact('a short tail beside the runs');
  });

  it('stays exact when two processes index at once, events arriving meanwhile', async () => {
    await Promise.all([
      indexWhoRead(ctx.knex, SMALL),
      write(90),
      indexWhoRead(ctx.knex, { ...SMALL, flushTail: true }),
    ]);
    await assertAnswersExact('after two indexers');
    await indexWhoRead(ctx.knex, { ...SMALL, flushTail: true });
    assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
    assert.equal(await countRows(WHO_READ_TABLE), await countRows('hub_audit_subjects'));
  });

  it('gives up a merge left unfinished by a stopped process after ten minutes, and deletes what it had copied', async () => {
    const clock = createManualClock(new Date().toISOString());
    await write(140);
    let stopped = false;
    await assert.rejects(
      indexWhoRead(ctx.knex, {
        ...SMALL,
        clock,
        beforeMergeStep: (step) => {
          if (step === 'switch') {
            stopped = true;
            return Promise.reject(new Error('the process stopped'));
          }
          return Promise.resolve();
        },
      }),
      /the process stopped/,
    );
    assert.ok(stopped);
    const building = await ctx.knex(WHO_READ_RUNS).where({ state: 'building' }).pluck('run');
    assert.equal(building.length, 1);
    await assertAnswersExact('with a merge left unfinished');
    clock.advance(5 * 60_000);
    await indexWhoRead(ctx.knex, { ...SMALL, clock, fanIn: 1000 });
    assert.deepEqual(
      await ctx.knex(WHO_READ_RUNS).where({ state: 'building' }).pluck('run'),
      building,
      'kept while recent',
    );
    clock.advance(6 * 60_000);
    await indexWhoRead(ctx.knex, { ...SMALL, clock, flushTail: true });
    assert.deepEqual(await ctx.knex(WHO_READ_RUNS).where({ state: 'building' }).pluck('run'), []);
    assert.equal(await countRows(WHO_READ_TABLE), await countRows('hub_audit_subjects'));
    await assertAnswersExact('after the unfinished merge was given up');
    assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
  });

  it("the serving hub's indexing keeps runs coming, and stops between two transactions, giving up its merge", async () => {
    await write(150);
    const before = await countRows(WHO_READ_TABLE);
    let stopped = undefined as Promise<void> | undefined;
    let copies = 0;
    const indexing = startWhoReadIndexing(ctx.knex, quietLog, {
      intervalMs: 10,
      index: {
        ...SMALL,
        beforeMergeStep: (step) => {
          if (step === 'copy' && ++copies === 2) stopped = indexing.stop();
          return Promise.resolve();
        },
      },
    });
    // Wrapped: a promise handed to Promise.resolve would be waited for, not returned.
    const started = await waitFor(
      'a merge started',
      () => Promise.resolve({ stopping: stopped }),
      (value) => value.stopping !== undefined,
    );
    await started.stopping;
    assert.ok((await countRows(WHO_READ_TABLE)) > before, 'new runs were made');
    await assertStoppedCleanly('the merge was given up', 'after the indexing stopped');
  });

  it('a thread of its own keeps runs coming while this thread never yields, and its stop gives up its merge', async () => {
    await write(150);
    const indexedBefore = await fetchIndexedUpTo(ctx.knex);
    const indexing = await startWhoReadIndexingThread(
      { databaseUrl: db.url(), intervalMs: 10, index: SMALL },
      quietLog,
    );
    try {
      const file = sqliteFilename(ctx.knex);
      if (file !== null) {
        // Held in a synchronous loop, this thread runs nothing else: a run it sees was made by another.
        const probe = new Database(file, { readonly: true });
        try {
          const indexedUpTo = probe
            .prepare(`SELECT COALESCE(MAX(last_audit_id), 0) FROM ${WHO_READ_RUNS}`)
            .pluck();
          const deadline = Date.now() + 60_000;
          while (Number(indexedUpTo.get()) <= indexedBefore && Date.now() < deadline);
          assert.ok(Number(indexedUpTo.get()) > indexedBefore, 'a run was made while this thread was held');
        } finally {
          probe.close();
        }
      }
      await write(100);
      await waitFor(
        'the index caught up with the events written',
        () => fetchIndexedUpTo(ctx.knex),
        (upTo) => upTo > indexedBefore + 150,
      );
    } finally {
      await indexing.stop();
    }
    await assertStoppedCleanly('no merge left half-made', 'after the thread stopped');
  });

  it('a thread that cannot open the warehouse fails its start with the reason', async () => {
    await assert.rejects(
      startWhoReadIndexingThread({ databaseUrl: unreachableUrl(), intervalMs: 10 }, quietLog),
      (err: Error) => {
        assert.match(
          err.message,
          /who-read index thread could not start: .*(unable to open|does not exist)/s,
        );
        return true;
      },
    );
  });

  /**
   * Starts a hub's indexing as told, writes while it runs, and returns what it logged once the
   * index has caught up and it is stopped; every answer and the index are then checked.
   */
  const indexAsAHub = async (options: Parameters<typeof startHubWhoReadIndexing>[1]) => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    await write(150);
    const indexedBefore = await fetchIndexedUpTo(ctx.knex);
    const indexing = startHubWhoReadIndexing({ ...ctx, logger }, options);
    try {
      await waitFor(
        'the index caught up with the events written',
        () => fetchIndexedUpTo(ctx.knex),
        (upTo) => upTo > indexedBefore + 100,
      );
    } finally {
      await indexing.stop();
    }
    await assertAnswersExact('indexed by the serving thread');
    await indexWhoRead(ctx.knex, { ...SMALL, flushTail: true });
    assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
    return lines.join('\n');
  };

  it('a hub whose index thread cannot start keeps the index on its serving thread, and says so', async () => {
    const logged = await indexAsAHub({
      thread: { databaseUrl: unreachableUrl(), intervalMs: 10, index: SMALL },
    });
    // PostgreSQL's indexing never had a thread to lose: its statements run in the database.
    if (db.name === 'sqlite')
      assert.match(logged, /who-read index thread not started: the serving thread keeps the index/);
  });

  it('a hub whose index thread ends unasked hands the index to its serving thread, and says so', async function () {
    // Only a SQLite file's index has a thread to lose.
    if (db.name !== 'sqlite') this.skip();
    const logged = await indexAsAHub({
      thread: { intervalMs: 10, index: SMALL },
      entry: new URL('../../fixtures/threads/exits-after-ready.mjs', import.meta.url),
    });
    assert.match(logged, /who-read index thread ended: the serving thread keeps the index/);
  });

  describe('verify names every way the index can disagree with the log', () => {
    const anyRow = () =>
      ctx
        .knex(WHO_READ_TABLE)
        .orderBy(['run', 'national_id', 'audit_id'])
        .first<{ run: number; national_id: string; audit_id: number }>('*');

    it('a deleted row', async () => {
      const row = await anyRow();
      await ctx.knex(WHO_READ_TABLE).where(row).delete();
      assert.match(
        (await verifyWhoReadIndex(ctx.knex)).join('\n'),
        new RegExp(`run ${row.run} lacks 1 subject rows`),
      );
      await ctx.knex(WHO_READ_TABLE).insert(row);
      assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
    });

    it('an added row', async () => {
      const row = await anyRow();
      await ctx.knex(WHO_READ_TABLE).insert({ ...row, national_id: validId(9999) });
      assert.match(
        (await verifyWhoReadIndex(ctx.knex)).join('\n'),
        new RegExp(`run ${row.run} holds 1 rows that are not in the log`),
      );
      await ctx
        .knex(WHO_READ_TABLE)
        .where({ ...row, national_id: validId(9999) })
        .delete();
    });

    it('an edited row', async () => {
      const row = await anyRow();
      await ctx
        .knex(WHO_READ_TABLE)
        .where(row)
        .update({ national_id: validId(9998) });
      const problems = (await verifyWhoReadIndex(ctx.knex)).join('\n');
      assert.match(problems, /lacks 1 subject rows/);
      assert.match(problems, /holds 1 rows that are not in the log/);
      await ctx
        .knex(WHO_READ_TABLE)
        .where({ ...row, national_id: validId(9998) })
        .update({ national_id: row.national_id });
    });

    it('a run taken off the list, before others', async () => {
      await write(50);
      await indexWhoRead(ctx.knex, { ...SMALL, fanIn: 1000, flushTail: true });
      const first = await ctx
        .knex(WHO_READ_RUNS)
        .where({ state: 'live' })
        .orderBy('first_audit_id')
        .first<{ run: number }>('run');
      const listed = await ctx.knex(WHO_READ_RUNS).where({ run: first.run }).first<Record<string, unknown>>();
      await ctx.knex(WHO_READ_RUNS).where({ run: first.run }).delete();
      assert.match((await verifyWhoReadIndex(ctx.knex)).join('\n'), /starts at event \d+, expected 1/);
      await ctx.knex(WHO_READ_RUNS).insert(listed);
      assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
    });
  });

  it('migration 018 turns the subject rows already logged into one run, and goes back down keeping them', async () => {
    await write(30);
    const fetchSubjects = () =>
      ctx
        .knex('hub_audit_subjects')
        .orderBy(['audit_id', 'national_id'])
        .select<Array<{ audit_id: number | string; national_id: string }>>('audit_id', 'national_id');
    /** The record itself still refuses a DELETE. */
    const assertAppendOnly = () =>
      assert.rejects(
        ctx.knex('hub_audit_subjects').where(before[0]!).delete(),
        /append-only|permission denied/,
      );
    const before = await fetchSubjects();
    await ctx.knex.transaction((trx) => whoReadRuns.down(trx));
    assert.equal(await ctx.knex.schema.hasTable(WHO_READ_TABLE), false);
    assert.deepEqual(await fetchSubjects(), before);
    await assertAppendOnly();

    await ctx.knex.transaction((trx) => whoReadRuns.up(trx));
    assert.deepEqual(await fetchSubjects(), before);
    const runs = await liveRuns();
    assert.equal(runs.length, 1, 'one run of the whole log');
    assert.equal(await countRows(WHO_READ_TABLE), before.length);
    await assertAppendOnly();
    await assert.rejects(ctx.knex('hub_audit_subjects').insert(before[0]!), 'an event names a person once');
    await assertAnswersExact('after migrating down and up');
    assert.deepEqual(await verifyWhoReadIndex(ctx.knex), []);
  });
});
