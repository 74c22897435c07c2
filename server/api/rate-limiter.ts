import type { Clock } from '../../warehouse/core/clock.ts';
import { HubError } from '../../warehouse/core/errors.ts';

export interface RateLimits {
  perMinute: number;
  perDay: number;
}

interface Window {
  start: number;
  count: number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

/**
 * Fixed windows per client, one per minute and one per day, counted in this process. The
 * clock is injected so a test moves time instead of waiting.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { minute: Window; day: Window }>();

  constructor(private readonly clock: Clock) {}

  /** Counts one request, or throws 429 with the seconds until the window that is full resets. */
  consume(clientId: string, limits: RateLimits): void {
    const now = this.clock.now().getTime();
    const entry = this.windows.get(clientId) ?? {
      minute: { start: 0, count: 0 },
      day: { start: 0, count: 0 },
    };
    this.windows.set(clientId, entry);
    const minute = roll(entry.minute, now, MINUTE);
    const day = roll(entry.day, now, DAY);
    if (minute.count >= limits.perMinute)
      throw rateLimited('minute', limits.perMinute, minute.start + MINUTE - now);
    if (day.count >= limits.perDay) throw rateLimited('day', limits.perDay, day.start + DAY - now);
    minute.count++;
    day.count++;
  }
}

function roll(window: Window, now: number, length: number): Window {
  const start = now - (now % length);
  if (window.start !== start) {
    window.start = start;
    window.count = 0;
  }
  return window;
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
