import type { Clock } from '../../warehouse/core/clock.ts';
import { RateLimiter } from './rate-limiter.ts';

/** What the consumer API keeps between requests in one process. */
export interface ApiState {
  limiter: RateLimiter;
}

export function createApiState(clock: Clock): ApiState {
  return { limiter: new RateLimiter(clock) };
}
