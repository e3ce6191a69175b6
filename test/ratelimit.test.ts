import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SidecarError } from '../src/errors/index.ts';
import { createLogger } from '../src/log/index.ts';
import {
  createMemoryRateLimitStore,
  createRateLimiter,
  createRedisRateLimitStore,
  enforceRateLimit,
  rateLimitHeaders,
  type RateLimiter,
  type RateLimitResult,
} from '../src/ratelimit/index.ts';
import { createRedis, waitForRedis, type StoreClient } from '../src/stores/index.ts';
import { captureLogs } from './helpers.ts';
import { startRedis, type RedisServer } from './redis-server.ts';

let server: RedisServer;
// Two clients, two limiters: what two sidecar processes sharing one Redis amount to.
let clients: StoreClient[] = [];
const logs = captureLogs();
const logger = createLogger('info', logs.stream);
let keySeq = 0;
const freshKey = () => `sub:user-${process.pid}-${++keySeq}`;

beforeAll(async () => {
  server = await startRedis();
  clients = [0, 1].map(() => createRedis({ url: server.url, keyPrefix: 'test-ratelimit:', connectTimeout: 1000, commandTimeout: 500 }, logger));
  await Promise.all(clients.map((c) => waitForRedis(c)));
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await server?.close();
});

const redisLimiter = (i: number, failMode: 'open' | 'closed' = 'open') =>
  createRateLimiter({ store: createRedisRateLimitStore(clients[i]!), failMode, logger });

describe('GCRA in memory (fake clock)', () => {
  let clock = 1_000_000;
  const limiter = createRateLimiter({ store: createMemoryRateLimitStore({ now: () => clock }), failMode: 'open', logger });

  it('allows a burst of `requests`, then one per emission interval', async () => {
    const rule = { requests: 5, perMs: 1000 };
    const results: RateLimitResult[] = [];
    for (let i = 0; i < 6; i++) results.push(await limiter.check('k1', rule));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, true, false]);
    expect(results.map((r) => r.remaining)).toEqual([4, 3, 2, 1, 0, 0]);
    expect(results[5]).toMatchObject({ limit: 5, retryAfterMs: 200, resetMs: 1000 });
    clock += 199;
    expect((await limiter.check('k1', rule)).allowed).toBe(false);
    clock += 1;
    expect(await limiter.check('k1', rule)).toMatchObject({ allowed: true, remaining: 0 });
    clock += 1000;
    expect(await limiter.check('k1', rule)).toMatchObject({ allowed: true, remaining: 4 });
  });

  it('honours a burst smaller than the rate', async () => {
    const rule = { requests: 10, perMs: 10_000, burst: 3 };
    const first = await limiter.check('k2', rule);
    expect(first).toMatchObject({ allowed: true, limit: 3, remaining: 2, windowMs: 3000 });
    await limiter.check('k2', rule);
    await limiter.check('k2', rule);
    expect(await limiter.check('k2', rule)).toMatchObject({ allowed: false, retryAfterMs: 1000 });
    clock += 3000;
    expect(await limiter.check('k2', rule)).toMatchObject({ allowed: true, remaining: 2 });
  });
});

describe('GCRA in Redis, shared by two limiters', () => {
  it('holds one limit across both, with a Retry-After that matches the rate', async () => {
    const [a, b] = [redisLimiter(0), redisLimiter(1)];
    const key = freshKey();
    const rule = { requests: 5, perMs: 60_000 };
    const results: RateLimitResult[] = [];
    for (let i = 0; i < 7; i++) results.push(await (i % 2 === 0 ? a : b).check(key, rule));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, true, false, false]);
    expect(results.map((r) => r.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0]);
    // One request per 12 s is the sustained rate; a little of that has passed already.
    expect(results[5]!.retryAfterMs).toBeGreaterThan(10_000);
    expect(results[5]!.retryAfterMs).toBeLessThanOrEqual(12_000);
    expect(rateLimitHeaders({ policy: 'principal', result: results[5]! })['retry-after']).toBe('12');
  });

  it('is atomic under concurrent checks from both clients', async () => {
    const limiters = [redisLimiter(0), redisLimiter(1)];
    const key = freshKey();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => limiters[i % 2]!.check(key, { requests: 10, perMs: 60_000 })));
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
  });

  it('refills at the sustained rate', async () => {
    const [a, b] = [redisLimiter(0), redisLimiter(1)];
    const key = freshKey();
    const rule = { requests: 20, perMs: 1000, burst: 2 };
    expect((await a.check(key, rule)).allowed).toBe(true);
    expect((await b.check(key, rule)).allowed).toBe(true);
    const refused = await a.check(key, rule);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(50);
    await new Promise((r) => setTimeout(r, refused.retryAfterMs + 10));
    expect((await b.check(key, rule)).allowed).toBe(true);
  });
});

describe('headers', () => {
  const ok: RateLimitResult = { allowed: true, limit: 100, remaining: 42, resetMs: 34_500, retryAfterMs: 0, windowMs: 60_000 };
  const refused: RateLimitResult = { allowed: false, limit: 10, remaining: 0, resetMs: 9000, retryAfterMs: 2100, windowMs: 10_000 };

  it('formats RateLimit-Policy and RateLimit as structured field lists', () => {
    expect(rateLimitHeaders({ policy: 'principal', result: ok })).toEqual({ 'ratelimit-policy': '"principal";q=100;w=60', ratelimit: '"principal";r=42;t=35' });
    expect(rateLimitHeaders({ policy: 'principal', result: ok }, { policy: 'route "x"', result: refused })).toEqual({
      'ratelimit-policy': '"principal";q=100;w=60, "routex";q=10;w=10',
      ratelimit: '"principal";r=42;t=35, "routex";r=0;t=3',
      'retry-after': '3',
    });
    expect(rateLimitHeaders({ policy: 'p', result: { ...ok, degraded: true } })).toEqual({});
  });

  it('enforceRateLimit appends to the response headers and throws 429 with them', async () => {
    const limiter = createRateLimiter({ store: createMemoryRateLimitStore({ now: () => 0 }), failMode: 'open', logger });
    const headers = new Map<string, string>();
    await enforceRateLimit(limiter, 'who', { requests: 100, perMs: 60_000 }, headers, 'principal');
    const route = { requests: 1, perMs: 5000 };
    await enforceRateLimit(limiter, 'who|/runs', route, headers, 'route');
    expect(headers.get('ratelimit')).toBe('"principal";r=99;t=1, "route";r=0;t=5');
    const err = await enforceRateLimit(limiter, 'who|/runs', route, new Map(), 'route').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SidecarError);
    expect(err).toMatchObject({ code: 'SIDECAR_RATE_LIMITED', status: 429, headers: { 'retry-after': '5', ratelimit: '"route";r=0;t=5' } });
  });
});

describe('Redis outage', () => {
  it('fails open by default, closed when configured, and recovers when Redis is back', async () => {
    const open: RateLimiter = redisLimiter(0);
    const closed = redisLimiter(1, 'closed');
    const key = freshKey();
    const rule = { requests: 2, perMs: 60_000 };
    await server.stop();
    for (let i = 0; i < 3; i++) expect(await open.check(key, rule)).toMatchObject({ allowed: true, degraded: true });
    for (let i = 0; i < 3; i++) await expect(closed.check(key, rule)).rejects.toMatchObject({ code: 'SIDECAR_STORE_UNAVAILABLE', status: 503 });
    expect(open.stats.failedOpen).toBe(3);
    expect(closed.stats.failedClosed).toBe(3);
    expect(logs.lines.filter((l) => l.event_type === 'ratelimit_store_failed')).toHaveLength(2);

    await server.start();
    await Promise.all(clients.map((c) => waitForRedis(c, 10_000)));
    // A new Redis has an empty script cache: this also covers the EVALSHA fallback.
    expect(await open.check(key, rule)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await closed.check(key, rule)).toMatchObject({ allowed: true, remaining: 0 });
    expect((await open.check(key, rule)).allowed).toBe(false);
  });
});
