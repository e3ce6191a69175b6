import assert from 'node:assert/strict';

/** A limit: `requests` per `perMs`, with up to `burst` (default `requests`) at once. */
export interface RateRule {
  requests: number;
  perMs: number;
  burst?: number | undefined;
}

export interface RateLimitResult {
  allowed: boolean;
  /** The most requests allowed at once (the burst). */
  limit: number;
  /** Requests that would still be allowed right now. */
  remaining: number;
  /** Until the limit is whole again (remaining === limit). */
  resetMs: number;
  /** When refused: until one request would be allowed; 0 when allowed. */
  retryAfterMs: number;
  /** The window `limit` refills over, for the RateLimit-Policy header. */
  windowMs: number;
  /** The store failed and failMode open let the request through: the numbers are unknown. */
  degraded?: true;
}

/** A rule reduced to GCRA's two numbers. */
export interface Gcra {
  /** Milliseconds between two requests at the sustained rate (T). */
  emissionMs: number;
  /** Requests allowed at once (the tolerance is burst × T). */
  burst: number;
}

export function toGcra(rule: RateRule): Gcra {
  assert.ok(Number.isInteger(rule.requests) && rule.requests >= 1, 'rate rule: requests must be a positive integer');
  assert.ok(rule.perMs > 0, 'rate rule: perMs must be positive');
  const burst = rule.burst ?? rule.requests;
  assert.ok(Number.isInteger(burst) && burst >= 1, 'rate rule: burst must be a positive integer');
  return { emissionMs: rule.perMs / rule.requests, burst };
}

// Ratios such as (3T - T) / T land on 1.9999999 in floating point.
const EPSILON = 1e-9;

/**
 * The Generic Cell Rate Algorithm (ITU-T I.371) on one stored number, the theoretical
 * arrival time (TAT) of the next request. Equivalent to a token bucket of `burst` tokens
 * refilled every T, with no refill timer and one value per key. The Redis Lua script in
 * redis.ts is a line-by-line transcription; keep them in step.
 *
 * Returns the result and the new TAT to store (undefined when refused: nothing changes).
 */
export function gcra(g: Gcra, now: number, storedTat: number | undefined): { result: Omit<RateLimitResult, 'windowMs'>; tat: number | undefined } {
  const tat = Math.max(storedTat ?? now, now);
  const newTat = tat + g.emissionMs;
  const allowAt = newTat - g.burst * g.emissionMs;
  if (now < allowAt) {
    return { result: { allowed: false, limit: g.burst, remaining: 0, resetMs: Math.ceil(tat - now), retryAfterMs: Math.ceil(allowAt - now) }, tat: undefined };
  }
  const remaining = Math.floor((now - allowAt) / g.emissionMs + EPSILON);
  return { result: { allowed: true, limit: g.burst, remaining, resetMs: Math.ceil(newTat - now), retryAfterMs: 0 }, tat: newTat };
}
