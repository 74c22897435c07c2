import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';

/** Failed token requests allowed per fixed one-minute window, per address and per client id. */
export const TOKEN_FAILURE_WINDOW_MS = 60_000;
export const MAX_FAILURES_PER_ADDRESS = 30;
export const MAX_FAILURES_PER_CLIENT = 10;

export interface TokenRequester {
  ip: string;
  /** The client id the request claims, when it carried one as text. */
  clientId: string | null;
}

interface Subject {
  subject: string;
  limit: number;
  what: string;
}

function listSubjects({ ip, clientId }: TokenRequester): Subject[] {
  const subjects: Subject[] = [
    { subject: `address:${ip}`, limit: MAX_FAILURES_PER_ADDRESS, what: `address ${ip || 'unknown'}` },
  ];
  // PostgreSQL refuses NUL in text; the id is only a counter's name here.
  const id = clientId?.replaceAll('\u0000', '').slice(0, 100) ?? '';
  if (id !== '')
    subjects.push({ subject: `client:${id}`, limit: MAX_FAILURES_PER_CLIENT, what: 'this client id' });
  return subjects;
}

const windowStart = (ctx: AppContext) => {
  const now = ctx.clock.now().getTime();
  return { now, start: now - (now % TOKEN_FAILURE_WINDOW_MS) };
};

/**
 * 429 `rate_limited` (with the seconds until the window ends) once the address or the client id
 * has used up its failures: checked before anything else, so a flood of bad requests costs one
 * indexed read each, and not even the right secret gets through until the window ends. The count
 * lives in the warehouse, so every hub process on it refuses alike.
 */
export async function assertTokenRequestAllowed(ctx: AppContext, requester: TokenRequester): Promise<void> {
  const subjects = listSubjects(requester);
  const { now, start } = windowStart(ctx);
  const rows = await ctx
    .knex('hub_token_failures')
    .where({ window_start: start })
    .whereIn(
      'subject',
      subjects.map((s) => s.subject),
    )
    .select<Array<{ subject: string; failures: number | string }>>('subject', 'failures');
  for (const s of subjects) {
    const failures = Number(rows.find((r) => r.subject === s.subject)?.failures ?? 0);
    if (failures >= s.limit) {
      const retryAfter = Math.max(1, Math.ceil((start + TOKEN_FAILURE_WINDOW_MS - now) / 1000));
      throw new HubError(
        'rate_limited',
        429,
        `too many failed token requests from ${s.what}; retry in ${retryAfter} s`,
        {
          retry_after: retryAfter,
        },
      );
    }
  }
}

/** Counts one failed request against the address and the client id, and drops the counts of past windows. */
export async function countTokenFailure(ctx: AppContext, requester: TokenRequester): Promise<void> {
  const { start } = windowStart(ctx);
  for (const { subject } of listSubjects(requester)) {
    await incrementFailures(ctx, subject, start);
  }
  await ctx.knex('hub_token_failures').where('window_start', '<', start).delete();
}

// Update first, insert when there was no row; a second process inserting the same row first
// makes the insert fail, and the update then finds it.
async function incrementFailures(ctx: AppContext, subject: string, start: number): Promise<void> {
  const key = { subject, window_start: start };
  const increment = () => ctx.knex('hub_token_failures').where(key).increment('failures', 1);
  if (Number(await increment()) > 0) return;
  try {
    await ctx.knex('hub_token_failures').insert({ ...key, failures: 1 });
  } catch (err) {
    if (!ctx.dialect.isUniqueViolation(err)) throw err;
    await increment();
  }
}
