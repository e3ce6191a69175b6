import type { Logger } from '../log/index.ts';
import { createStoreFailureHandler, type FailModeStats } from '../stores/index.ts';
import { toGcra, type Gcra, type RateLimitResult, type RateRule } from './gcra.ts';
import type { RateLimitStore } from './store.ts';

export interface RateLimiterOptions {
  store: RateLimitStore;
  /** rateLimit.failMode: what an unreachable store means. */
  failMode: 'open' | 'closed';
  logger: Logger;
  /** At most one warning per this long while the store is failing. Default 10 s. */
  warnIntervalMs?: number;
}

export interface RateLimiter {
  /** Counts one request of `key` (for example `sub:alice` or `sub:alice|POST /v1/runs`) against `rule`. */
  check(key: string, rule: RateRule): Promise<RateLimitResult>;
  readonly stats: FailModeStats;
}

/**
 * Rate limiting with GCRA (see gcra.ts) in the given store. When the store fails:
 * failMode open lets the request through with a `degraded` result (counted, warned once
 * per interval): an outage of Redis should not become an outage of the agent; failMode
 * closed throws SIDECAR_STORE_UNAVAILABLE (503).
 *
 * @example
 * const limiter = createRateLimiter({ store, failMode: config.rateLimit.failMode, logger });
 * const result = await limiter.check(`sub:${principal.subject}`, { requests: 100, perMs: 60_000 });
 * enforceRateLimit({ policy: 'principal', result }); // throws 429 with Retry-After
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { store, failMode } = options;
  const failure = createStoreFailureHandler({
    store: 'ratelimit',
    openMeans: 'requests pass unlimited',
    failMode,
    logger: options.logger,
    warnIntervalMs: options.warnIntervalMs,
  });
  // Rules come from the frozen configuration: reduce each once, not per request.
  const reduced = new WeakMap<RateRule, Gcra>();

  return {
    stats: failure.stats,
    async check(key, rule) {
      let g = reduced.get(rule);
      if (g === undefined) reduced.set(rule, (g = toGcra(rule)));
      const windowMs = Math.ceil(g.burst * g.emissionMs);
      try {
        return { ...(await store.take(key, g)), windowMs };
      } catch (err) {
        failure.failed(err);
        return { allowed: true, limit: g.burst, remaining: g.burst, resetMs: 0, retryAfterMs: 0, windowMs, degraded: true };
      }
    },
  };
}
