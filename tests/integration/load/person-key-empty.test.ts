import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { idRegistry, validId } from '../../support/registry-fixture.ts';
import { waitFor } from '../../support/wait-for.ts';

const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => validId(from + i));
const CIVIL = ids(700, 739);
const CARS = ids(720, 759);
const EVERYONE = [...new Set([...CIVIL, ...CARS])].sort();

describeEachDatabase("a hub's first registry loads fill the person key, its primary key intact", (db) => {
  let dir: string;
  let ctx: AppContext;

  const runFull = async (name: string) => {
    const def = (await readConnectorDefinitions(ctx.config.connectorsDir)).find((d) => d.name === name)!;
    return runConnector(def, ctx, { full: true });
  };
  const persons = () => ctx.knex('hub_persons').orderBy('national_id').pluck<string[]>('national_id');

  before(async () => {
    dir = await createTempDir('hub-empty-key-');
    ctx = openTestContext(db.url(), dir);
    await idRegistry.define(ctx.config.connectorsDir, dir, 'reg-civil', 'reg_civil', ['national_id']);
    await idRegistry.define(ctx.config.connectorsDir, dir, 'reg-cars', 'reg_cars', ['id']);
    idRegistry.setIds(dir, 'reg-civil', CIVIL);
    idRegistry.setIds(dir, 'reg-cars', [...CARS, ...CARS.slice(0, 5)]);
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('two first loads sharing persons, swapping at once into the empty key, both succeed and list each person once', async () => {
    assert.deepEqual(await persons(), []);
    // On PostgreSQL the test holds the key until both swaps wait for it, so that they meet there.
    const holder = db.name === 'postgres' ? await ctx.knex.transaction() : null;
    // Each transaction's statements on the person key, in order.
    const keyStatements = new Map<string, string[]>();
    const listen = (query: { sql: string; __knexTxId?: string }) => {
      if (query.__knexTxId === undefined || !query.sql.includes('hub_persons')) return;
      keyStatements.set(query.__knexTxId, [...(keyStatements.get(query.__knexTxId) ?? []), query.sql]);
    };
    ctx.knex.on('query', listen);
    try {
      await holder?.raw('LOCK TABLE hub_persons IN SHARE MODE');
      const loads = Promise.all([runFull('reg-civil'), runFull('reg-cars')]);
      if (holder !== null) {
        const waiting = () =>
          ctx.knex.raw<{ rows: Array<{ n: number }> }>(
            "SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'hub_persons'::regclass AND NOT granted",
          );
        await waitFor('loads waiting for the person key', waiting, ({ rows }) => rows[0]!.n >= 2);
      }
      await holder?.commit();
      const summaries = await loads;
      for (const summary of summaries) assert.equal(summary.status, 'succeeded', summary.error ?? '');
    } finally {
      ctx.knex.off('query', listen);
      if (holder !== null && !holder.isCompleted()) await holder.rollback();
    }
    // A swap that fills the key takes its exclusive lock before reading it: two swaps that each
    // read it first, then asked for the lock, waited for each other, and PostgreSQL ended one
    // as a deadlock (whenever both read before either asked).
    const fills = [...keyStatements.values()].filter((sqls) =>
      sqls.some((sql) => /ACCESS EXCLUSIVE/i.test(sql)),
    );
    if (db.name === 'postgres') assert.ok(fills.length >= 1, 'a swap filled the empty key');
    for (const sqls of fills) assert.match(sqls[0]!, /^LOCK TABLE "hub_persons" IN ACCESS EXCLUSIVE MODE/i);
    assert.deepEqual(await persons(), EVERYONE);
    await assert.rejects(
      ctx.knex('hub_persons').insert({ national_id: CIVIL[0], first_seen_at: '2026-01-01T00:00:00.000Z' }),
      (err: unknown) => ctx.dialect.isUniqueViolation(err),
      'the person key still refuses a national ID it holds',
    );
  });

  it('a swap that finds the key filled once it holds the lock lets go of it at once, leaving it to readers', async function () {
    const fillWithoutPrimaryKey = ctx.dialect.fillWithoutPrimaryKey;
    if (fillWithoutPrimaryKey === undefined) this.skip();
    const swap = await ctx.knex.transaction();
    try {
      let filled = false;
      const stillWanted = async () => (await swap('hub_persons').first('national_id')) === undefined;
      const done = await fillWithoutPrimaryKey(swap, 'hub_persons', stillWanted, () => {
        filled = true;
        return Promise.resolve();
      });
      assert.equal(done, false);
      assert.equal(filled, false);
      const held = await swap.raw<{ rows: Array<{ mode: string }> }>(
        "SELECT mode FROM pg_locks WHERE relation = 'hub_persons'::regclass AND pid = pg_backend_pid()",
      );
      assert.deepEqual(
        held.rows.filter((r) => r.mode === 'AccessExclusiveLock'),
        [],
        'no exclusive lock left',
      );
      // Another session reads the key while the swap's transaction is still open; were the lock
      // still held, the read would give up after the timeout instead of answering.
      const counted = await ctx.knex.transaction(async (reader) => {
        await reader.raw("SET LOCAL lock_timeout = '10s'");
        return reader('hub_persons').count<Array<{ n: number | string }>>({ n: '*' });
      });
      assert.equal(Number(counted[0]!.n), EVERYONE.length);
    } finally {
      await swap.rollback();
    }
    assert.deepEqual(await persons(), EVERYONE, 'the key as it was');
  });

  it('a reload afterwards adds only the persons the key lacks', async () => {
    idRegistry.setIds(dir, 'reg-civil', [...CIVIL, validId(760)]);
    assert.equal((await runFull('reg-civil')).status, 'succeeded');
    assert.deepEqual(await persons(), [...EVERYONE, validId(760)].sort());
  });
});
