import type { Knex } from 'knex';
import type { Clock } from '../../warehouse/core/clock.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import type { DialectName } from '../../warehouse/db.ts';
import { consumeRateWindows, fetchRateWindows } from '../../warehouse/rate-windows.ts';

export interface RateLimits {
  perMinute: number;
  perDay: number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

/**
 * Fixed windows per client, one per minute and one per day, counted in the warehouse
 * (`hub_rate_limits`), so every hub process and host on it counts the same requests: a client
 * is refused at its limit however many processes share its calls. A refused call is not counted.
 * The clock is injected so a test moves time instead of waiting.
 */
export class RateLimiter {
  constructor(
    private readonly knex: Knex,
    private readonly dialect: DialectName,
    private readonly clock: Clock,
  ) {}

  /** Counts one request, or throws 429 with the seconds until the window that is full resets. */
  async consume(clientId: string, limits: RateLimits): Promise<void> {
    const now = this.clock.now().getTime();
    const minuteStart = now - (now % MINUTE);
    const dayStart = now - (now % DAY);
    const counted = await consumeRateWindows(this.knex, this.dialect, {
      clientId,
      minuteStart,
      dayStart,
      perMinute: limits.perMinute,
      perDay: limits.perDay,
    });
    if (counted) return;
    const windows = await fetchRateWindows(this.knex, clientId);
    const minuteFull =
      windows === null || (windows.minuteStart >= minuteStart && windows.minuteCount >= limits.perMinute);
    if (minuteFull) throw rateLimited('minute', limits.perMinute, minuteStart + MINUTE - now);
    throw rateLimited('day', limits.perDay, dayStart + DAY - now);
  }
}

function rateLimited(period: string, limit: number, msLeft: number): HubError {
  const retryAfter = Math.max(1, Math.ceil(msLeft / 1000));
  return new HubError(
    'rate_limited',
    429,
    `rate limit of ${limit} requests per ${period} reached; retry in ${retryAfter} s`,
    {
      retry_after: retryAfter,
    },
  );
}
