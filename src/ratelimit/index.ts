export { gcra, toGcra, type Gcra, type RateLimitResult, type RateRule } from './gcra.ts';
export { enforceRateLimit, rateLimitHeaders, type AppliedLimit } from './headers.ts';
export { createRateLimiter, type RateLimiter, type RateLimiterOptions } from './limiter.ts';
export { createMemoryRateLimitStore } from './memory.ts';
export { createRedisRateLimitStore, rateLimitKey } from './redis.ts';
export type { RateLimitStore } from './store.ts';
