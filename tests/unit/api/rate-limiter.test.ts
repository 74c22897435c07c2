import assert from 'node:assert/strict';
import { RateLimiter } from '../../../server/api/rate-limiter.ts';
import { HubError } from '../../../warehouse/core/errors.ts';
import { createManualClock } from '../../support/hub-context.ts';

const rateLimited = (retryAfter: number) => (err: unknown) =>
  err instanceof HubError &&
  err.status === 429 &&
  err.code === 'rate_limited' &&
  err.details?.retry_after === retryAfter;

describe('RateLimiter', () => {
  it('allows the per-minute limit, refuses the next call with the seconds left, and resets with the next minute', () => {
    const clock = createManualClock('2026-05-01T10:00:00.000Z');
    const limiter = new RateLimiter(clock);
    for (let i = 0; i < 3; i++) limiter.consume('a', { perMinute: 3, perDay: 100 });
    clock.advance(15_000);
    assert.throws(() => limiter.consume('a', { perMinute: 3, perDay: 100 }), rateLimited(45));
    clock.advance(45_000);
    limiter.consume('a', { perMinute: 3, perDay: 100 });
  });

  it('counts each client apart', () => {
    const limiter = new RateLimiter(createManualClock());
    limiter.consume('a', { perMinute: 1, perDay: 10 });
    limiter.consume('b', { perMinute: 1, perDay: 10 });
    assert.throws(() => limiter.consume('a', { perMinute: 1, perDay: 10 }), rateLimited(60));
  });

  it('refuses past the daily limit until the next day, whatever the minute', () => {
    const clock = createManualClock('2026-05-01T23:58:00.000Z');
    const limiter = new RateLimiter(clock);
    limiter.consume('a', { perMinute: 10, perDay: 2 });
    clock.advance(60_000);
    limiter.consume('a', { perMinute: 10, perDay: 2 });
    assert.throws(() => limiter.consume('a', { perMinute: 10, perDay: 2 }), rateLimited(60));
    clock.advance(60_000);
    limiter.consume('a', { perMinute: 10, perDay: 2 });
  });

  it('does not count a refused call', () => {
    const clock = createManualClock('2026-05-01T10:00:00.000Z');
    const limiter = new RateLimiter(clock);
    limiter.consume('a', { perMinute: 1, perDay: 2 });
    for (let i = 0; i < 5; i++) assert.throws(() => limiter.consume('a', { perMinute: 1, perDay: 2 }));
    clock.advance(60_000);
    limiter.consume('a', { perMinute: 1, perDay: 2 });
  });
});
