import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { RateLimiter, type RateLimits } from '../../../server/services/rate-limiter.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { HubError } from '../../../warehouse/core/errors.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { createManualClock, openTestContext } from '../../support/hub-context.ts';
import { isHubError } from '../../support/hub-errors.ts';

const rateLimited = (retryAfter: number, period: 'minute' | 'day') => (err: unknown) => {
  isHubError('rate_limited', 429, new RegExp(`per ${period}`))(err);
  assert.equal((err as HubError).details?.retry_after, retryAfter);
  return true;
};

describeEachDatabase('Rate limits counted in the warehouse', (db) => {
  let dir: string;
  let clock: ReturnType<typeof createManualClock>;
  // Two contexts stand for two hub processes: each has its own connections and its own limiter.
  let first: AppContext;
  let second: AppContext;
  let limiters: [RateLimiter, RateLimiter];
  let clientNumber = 0;
  const newClient = () => `rate-client-${++clientNumber}`;

  before(async () => {
    dir = await createTempDir('hub-rate-');
    clock = createManualClock('2026-05-01T10:00:00.000Z');
    first = openTestContext(db.url(), dir, { clock });
    await prepareWarehouse(first);
    second = openTestContext(db.url(), dir, { clock });
    limiters = [
      new RateLimiter(first.knex, first.dialect.name, clock),
      new RateLimiter(second.knex, second.dialect.name, clock),
    ];
  });

  after(async () => {
    await closeContext(first);
    await closeContext(second);
    await rm(dir, { recursive: true, force: true });
  });

  const consumeAt = (i: number, client: string, limits: RateLimits) =>
    limiters[i % 2]!.consume(client, limits);

  it('allows the per-minute limit across both processes, refuses the next call with the seconds left, and resets with the next minute', async () => {
    const client = newClient();
    const limits = { perMinute: 3, perDay: 100 };
    for (let i = 0; i < 3; i++) await consumeAt(i, client, limits);
    clock.advance(15_000);
    await assert.rejects(consumeAt(0, client, limits), rateLimited(45, 'minute'));
    await assert.rejects(consumeAt(1, client, limits), rateLimited(45, 'minute'));
    clock.advance(45_000);
    await consumeAt(1, client, limits);
  });

  it('counts each client apart', async () => {
    const [a, b] = [newClient(), newClient()];
    await consumeAt(0, a, { perMinute: 1, perDay: 10 });
    await consumeAt(1, b, { perMinute: 1, perDay: 10 });
    await assert.rejects(consumeAt(1, a, { perMinute: 1, perDay: 10 }), rateLimited(60, 'minute'));
  });

  it('refuses past the daily limit until the next day, whatever the minute', async () => {
    const client = newClient();
    // To 23:58 of the clock's day.
    clock.advance(86_400_000 - (clock.now().getTime() % 86_400_000) - 120_000);
    const limits = { perMinute: 10, perDay: 2 };
    await consumeAt(0, client, limits);
    clock.advance(60_000);
    await consumeAt(1, client, limits);
    await assert.rejects(consumeAt(0, client, limits), rateLimited(60, 'day'));
    clock.advance(60_000);
    await consumeAt(1, client, limits);
  });

  it('does not count a refused call', async () => {
    const client = newClient();
    const limits = { perMinute: 1, perDay: 2 };
    await consumeAt(0, client, limits);
    for (let i = 0; i < 5; i++) await assert.rejects(consumeAt(i, client, limits), rateLimited(60, 'minute'));
    clock.advance(60_000);
    await consumeAt(1, client, limits);
  });

  it('once it has seen a window full, refuses the client at once until the window ends, without asking the warehouse', async () => {
    const client = newClient();
    const limits = { perMinute: 2, perDay: 100 };
    await consumeAt(0, client, limits);
    await consumeAt(0, client, limits);
    clock.advance(20_000);
    await assert.rejects(consumeAt(0, client, limits), rateLimited(40, 'minute'));
    // With the counts out of reach, only an answer that needs no statement can still be given.
    await first.knex.schema.renameTable('hub_rate_limits', 'hub_rate_limits_away');
    try {
      clock.advance(10_000);
      await assert.rejects(consumeAt(0, client, limits), rateLimited(30, 'minute'));
      // The other process has not seen it, and other limits are other windows: both ask.
      await assert.rejects(consumeAt(1, client, limits), /hub_rate_limits/);
      await assert.rejects(consumeAt(0, client, { perMinute: 3, perDay: 100 }), /hub_rate_limits/);
    } finally {
      await first.knex.schema.renameTable('hub_rate_limits_away', 'hub_rate_limits');
    }
    clock.advance(30_000);
    await consumeAt(0, client, limits);
  });

  it('lets exactly the limit through when two processes race with many calls at once', async () => {
    const client = newClient();
    const limits = { perMinute: 20, perDay: 1000 };
    const outcomes = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) => consumeAt(i, client, limits)),
    );
    const passed = outcomes.filter((o) => o.status === 'fulfilled').length;
    const refused = outcomes.filter(
      (o) => o.status === 'rejected' && o.reason instanceof HubError && o.reason.code === 'rate_limited',
    ).length;
    assert.equal(passed, 20);
    assert.equal(refused, 40);
  });
});
