import type { Clock } from '../../warehouse/core/clock.ts';
import { TokenKeys } from '../services/token-service.ts';
import { RateLimiter } from './rate-limiter.ts';

/** What the consumer API keeps between requests in one process. */
export interface ApiState {
  keys: TokenKeys;
  limiter: RateLimiter;
}

export function createApiState(clock: Clock): ApiState {
  return { keys: new TokenKeys(), limiter: new RateLimiter(clock) };
}
