import type { AppContext } from '../context.ts';
import { RateLimiter } from '../services/rate-limiter.ts';

/** What the consumer API keeps between requests in one process. */
export interface ApiState {
  limiter: RateLimiter;
}

export function createApiState(ctx: AppContext): ApiState {
  return { limiter: new RateLimiter(ctx.knex, ctx.dialect.name, ctx.clock) };
}
