import { SidecarError } from '../errors/index.ts';
import type { RateLimitResult, RateRule } from './gcra.ts';
import type { RateLimiter } from './limiter.ts';

/** One limit that applied to a request, under the policy name clients see. */
export interface AppliedLimit {
  /** A short name such as `principal` or `route`; characters outside [A-Za-z0-9_.-] are dropped. */
  policy: string;
  result: RateLimitResult;
}

const seconds = (ms: number) => Math.ceil(ms / 1000);
const policyName = (name: string) => `"${name.replace(/[^A-Za-z0-9_.-]/g, '') || 'default'}"`;

/**
 * Response headers for the limits a request went through, in the format of
 * draft-ietf-httpapi-ratelimit-headers-10 (September 2025; -11 keeps it): both fields are
 * Structured Field Lists (RFC 9651) of policy-name strings with parameters.
 *
 *   RateLimit-Policy: "principal";q=100;w=60     q requests per w seconds (q = the burst)
 *   RateLimit: "principal";r=42;t=3               r remaining; t seconds until more quota
 *   Retry-After: 3                                only when refused; seconds (RFC 9110)
 *
 * `t` is the time until the limit is whole again, except on a refusal, where it equals
 * Retry-After: the draft says Retry-After should not point earlier than `t`. Degraded
 * results (store down, failMode open) produce no headers: there is nothing true to say.
 */
export function rateLimitHeaders(...limits: AppliedLimit[]): Record<string, string> {
  const known = limits.filter((l) => l.result.degraded !== true);
  if (known.length === 0) return {};
  const policies: string[] = [];
  const states: string[] = [];
  let retryAfterMs = 0;
  for (const { policy, result } of known) {
    const name = policyName(policy);
    policies.push(`${name};q=${result.limit};w=${Math.max(1, seconds(result.windowMs))}`);
    states.push(`${name};r=${result.remaining};t=${seconds(result.allowed ? result.resetMs : result.retryAfterMs)}`);
    if (!result.allowed) retryAfterMs = Math.max(retryAfterMs, result.retryAfterMs);
  }
  const headers: Record<string, string> = { 'ratelimit-policy': policies.join(', '), ratelimit: states.join(', ') };
  // At least 1: "Retry-After: 0" invites an immediate retry that is bound to fail again.
  if (known.some((l) => !l.result.allowed)) headers['retry-after'] = String(Math.max(1, seconds(retryAfterMs)));
  return headers;
}

/**
 * Checks `key` against `rule` and throws SIDECAR_RATE_LIMITED (429, with Retry-After and
 * RateLimit headers) when refused. The RateLimit fields are added to `headers` (the
 * response's), appending to those of limits checked before on the same request, so a
 * client sees every policy it is under. Returns the result.
 *
 * @example
 * await enforceRateLimit(limiter, `sub:${p.subject}`, rule, ctx.responseHeaders, 'principal');
 */
export async function enforceRateLimit(
  limiter: RateLimiter,
  key: string,
  rule: RateRule,
  headers: Map<string, string> = new Map(),
  policy = 'default',
): Promise<RateLimitResult> {
  const result = await limiter.check(key, rule);
  let name = policy;
  // Two limits under one name would read as one policy stated twice.
  for (let i = 2; headers.get('ratelimit-policy')?.includes(policyName(name)); i++) name = `${policy}-${i}`;
  const own = rateLimitHeaders({ policy: name, result });
  for (const field of ['ratelimit-policy', 'ratelimit'] as const) {
    if (own[field] === undefined) continue;
    const prior = headers.get(field);
    headers.set(field, prior === undefined ? own[field] : `${prior}, ${own[field]}`);
  }
  if (!result.allowed) {
    throw new SidecarError('SIDECAR_RATE_LIMITED', {
      headers: { ...Object.fromEntries(headers), 'retry-after': own['retry-after']! },
      details: { policy: name },
    });
  }
  return result;
}
