import type { Knex } from 'knex';
import type { Clock } from '../../warehouse/core/clock.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import type { DialectName } from '../../warehouse/db.ts';
import { findSqliteTurnWriter } from '../../warehouse/dialects/sqlite-turn-writer.ts';
import {
  consumeRateWindows,
  fetchRateWindows,
  RATE_WINDOWS_TURN_WRITE,
} from '../../warehouse/rate-windows.ts';

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
 *
 * On SQLite, whose one writer every request would otherwise queue on, the requests of one turn
 * of the event loop are counted in that turn's one write (SqliteTurnWriter); other databases
 * take one statement per request from their pool.
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
    const input = { clientId, minuteStart, dayStart, perMinute: limits.perMinute, perDay: limits.perDay };
    const counted =
      this.dialect === 'sqlite'
        ? await findSqliteTurnWriter(this.knex).submit(RATE_WINDOWS_TURN_WRITE, input)
        : await consumeRateWindows(this.knex, this.dialect, input);
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
