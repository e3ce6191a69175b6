import type { Gcra, RateLimitResult } from './gcra.ts';

/** Where rate-limit state lives: Redis (shared by every sidecar) or memory (this process). */
export interface RateLimitStore {
  /** Counts one request against `key`; rejects when the store cannot answer. */
  take(key: string, g: Gcra): Promise<Omit<RateLimitResult, 'windowMs'>>;
}
