import type { StoreClient } from '../stores/index.ts';
import type { RateLimitStore } from './store.ts';

/*
 * gcra() from gcra.ts, in Lua, so that read-compute-write is one atomic step and one
 * round trip. The clock is Redis's own TIME, not the sidecar's: every sidecar sharing a
 * key then measures against one clock, and a sidecar whose clock runs ahead cannot drain
 * (or one running behind refill) a caller's limit. Scripts have replicated their effects
 * rather than their text since Redis 5, so TIME before a write is safe; the guard below
 * turns that on for older servers.
 *
 * The key lives exactly until the limit would be whole again (PX), so idle callers cost
 * nothing. TAT is stored in milliseconds with microsecond fractions.
 */
const GCRA_LUA = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - burst * emission
if now < allow_at then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, math.floor((now - allow_at) / emission + 1e-9), math.ceil(new_tat - now), 0}
`;

type GcraRedis = StoreClient & { rateLimitGcra(key: string, emissionMs: number, burst: number): Promise<[number, number, number, number]> };

/** Key names under stores.redis.keyPrefix (ioredis applies the prefix). */
export const rateLimitKey = (key: string) => `ratelimit:${key}`;

/** Rate limits in Redis: one EVALSHA per check, shared by every sidecar using the same Redis. */
export function createRedisRateLimitStore(redis: StoreClient): RateLimitStore {
  if (!('rateLimitGcra' in redis)) redis.defineCommand('rateLimitGcra', { lua: GCRA_LUA, numberOfKeys: 1 });
  const r = redis as GcraRedis;
  return {
    async take(key, g) {
      const [allowed, remaining, resetMs, retryAfterMs] = await r.rateLimitGcra(rateLimitKey(key), g.emissionMs, g.burst);
      return { allowed: allowed === 1, limit: g.burst, remaining, resetMs, retryAfterMs };
    },
  };
}
