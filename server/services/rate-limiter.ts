import type { Database } from 'better-sqlite3';
import type { Knex } from 'knex';
import type { Clock } from '../../warehouse/core/clock.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import type { DialectName } from '../../warehouse/db.ts';
import { findSqliteTurnWriter } from '../../warehouse/dialects/sqlite-turn-writer.ts';
import {
  consumeRateWindows,
  consumeRateWindowsOnSqlite,
  fetchRateWindows,
  fetchRateWindowsOnSqlite,
  RATE_WINDOWS_TURN_WRITE,
  type RateWindowCounts,
  type RateWindowsInput,
} from '../../warehouse/rate-windows.ts';

export interface RateLimits {
  perMinute: number;
  perDay: number;
}

/** Whether a request was counted, or the refusal to answer in its place. */
export type RateVerdict = { counted: true } | { counted: false; refusal: HubError };

/** One request's count, taken later in a SQLite transaction of the caller's (see RateLimiter.startCount). */
export interface PendingCount {
  /** Counts the request on `db`, inside the caller's transaction; synchronous, so nothing runs between. */
  take(db: Database): RateVerdict;
}

/** A window this process saw full: every call in it is refused without asking the warehouse. */
interface KnownFull {
  until: number;
  limits: RateLimits;
  refusal: (now: number) => HubError;
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
 * take one statement per request from their pool. A window's count only grows until the window
 * ends, so once this process sees a client's window full it refuses the client's calls at once
 * until that window ends (for the same limits).
 */
export class RateLimiter {
  readonly #seenFull = new Map<string, KnownFull>();

  constructor(
    private readonly knex: Knex,
    private readonly dialect: DialectName,
    private readonly clock: Clock,
  ) {}

  /** Counts one request, or throws 429 with the seconds until the window that is full resets. */
  async consume(clientId: string, limits: RateLimits): Promise<void> {
    const now = this.clock.now().getTime();
    this.#refuseIfKnownFull(clientId, limits, now);
    const input = windowsAt(clientId, limits, now);
    const counted =
      this.dialect === 'sqlite'
        ? await findSqliteTurnWriter(this.knex).submit(RATE_WINDOWS_TURN_WRITE, input)
        : await consumeRateWindows(this.knex, this.dialect, input);
    if (counted) return;
    throw this.#refused(input, await fetchRateWindows(this.knex, clientId), now);
  }

  /**
   * Starts counting one request whose count is taken later, in the SQLite transaction that
   * writes its answer's audit event (see buildAuditOutcome): one commit a request instead of one
   * for the count and one for the event. The request is counted in the windows of now, the
   * moment it arrived. Throws 429 at once for a window this process already saw full.
   */
  startCount(clientId: string, limits: RateLimits): PendingCount {
    const now = this.clock.now().getTime();
    this.#refuseIfKnownFull(clientId, limits, now);
    const input = windowsAt(clientId, limits, now);
    return {
      take: (db) =>
        consumeRateWindowsOnSqlite(db, input)
          ? { counted: true }
          : { counted: false, refusal: this.#refused(input, fetchRateWindowsOnSqlite(db, clientId), now) },
    };
  }

  #refuseIfKnownFull(clientId: string, limits: RateLimits, now: number): void {
    const known = this.#seenFull.get(clientId);
    if (known === undefined) return;
    const sameLimits = known.limits.perMinute === limits.perMinute && known.limits.perDay === limits.perDay;
    if (now < known.until && sameLimits) throw known.refusal(now);
    if (now >= known.until) this.#seenFull.delete(clientId);
  }

  /** The refusal of a request its windows had no room for, remembered until the full window ends. */
  #refused(input: RateWindowsInput, windows: RateWindowCounts | null, now: number): HubError {
    const limits = { perMinute: input.perMinute, perDay: input.perDay };
    const minuteFull =
      windows === null ||
      (windows.minuteStart >= input.minuteStart && windows.minuteCount >= limits.perMinute);
    const [period, limit, until] = minuteFull
      ? (['minute', limits.perMinute, input.minuteStart + MINUTE] as const)
      : (['day', limits.perDay, input.dayStart + DAY] as const);
    const refusal = (at: number) => rateLimited(period, limit, until - at);
    this.#seenFull.set(input.clientId, { until, limits, refusal });
    return refusal(now);
  }
}

function windowsAt(clientId: string, limits: RateLimits, now: number): RateWindowsInput {
  return {
    clientId,
    minuteStart: now - (now % MINUTE),
    dayStart: now - (now % DAY),
    perMinute: limits.perMinute,
    perDay: limits.perDay,
  };
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
