import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createMemoryBudgetStore, createRedisBudgetStore, type BudgetStore } from '../src/egress/index.ts';
import { createRedis, waitForRedis } from '../src/stores/redis.ts';
import { Writable } from 'node:stream';
import { createLogger } from '../src/log/index.ts';
import { startServer, startSidecar } from './helpers.ts';
import { anthropicStream, sample, startFakeProvider, startMessagesProvider, type FakeProvider } from './fake-provider.ts';
import { startRedis, type RedisServer } from './redis-server.ts';

// claude-sonnet-4-6: $3 input, $15 output per million tokens.
const IN = 3e-6;
const quietLogger = () => createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
const redisClient = (url: string, keyPrefix: string) => createRedis({ url, keyPrefix, connectTimeout: 2000, commandTimeout: 2000 } as never, quietLogger());
const OUT = 15e-6;

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});

describe('budget stores: reserve, then settle', () => {
  const entries = (prefix: string) => [
    { key: `${prefix}:all`, ttlMs: 60_000, limitUsd: 1 },
    { key: `${prefix}:model`, ttlMs: 60_000, limitUsd: 0.5 },
  ];

  async function exercise(store: BudgetStore, prefix: string) {
    const e = entries(prefix);
    // Reserved amounts count at once: 0.3 + 0.3 reaches neither limit, a third is refused by the second.
    expect(await store.reserve(e, 0.3)).toEqual({
      ok: true,
      totals: [
        { spent: 0, reserved: 0.3 },
        { spent: 0, reserved: 0.3 },
      ],
    });
    expect(await store.reserve(e, 0.3)).toMatchObject({ ok: true });
    const refused = await store.reserve(e, 0.3);
    expect(refused).toMatchObject({ ok: false, refused: 1 });
    expect(refused.totals[1]!.reserved).toBeCloseTo(0.6, 9);
    // Settling releases the estimate and adds the cost; a call that cost nothing releases all.
    const settled = await store.settle(e, 0.3, 0.123456789);
    expect(settled[0]!.spent).toBeCloseTo(0.123456789, 9);
    expect(settled[0]!.reserved).toBeCloseTo(0.3, 9);
    const back = await store.settle(e, 0.3, 0);
    expect(back.map((t) => t.reserved)).toEqual([0, 0]);
    expect((await store.reserve(e, 0)).ok).toBe(true);
  }

  it('in memory', async () => {
    await exercise(createMemoryBudgetStore(), 'm');
  });

  it('in Redis: one script each, totals as decimals (not the integers a Lua number becomes)', async () => {
    const client = redisClient(redis.url, 'reserve-test:');
    try {
      await waitForRedis(client);
      await exercise(createRedisBudgetStore(client), 'budget:{agent}');
      expect(await client.hgetall('budget:{agent}:all')).toEqual({ spent: expect.stringMatching(/^0\.1234567/), reserved: '0' });
      expect(await client.pttl('budget:{agent}:all')).toBeGreaterThan(50_000);
    } finally {
      client.disconnect();
    }
  });
});

describe('budgets reserved atomically', () => {
  it('50 concurrent calls from 3 sidecars sharing Redis pass a hard limit by at most one call’s estimate', async () => {
    // Each call: about 1,000 input tokens (a 4,000-byte prompt) and max_tokens 1,000, which it uses.
    const cost = 1000 * IN + 1000 * OUT; // 0.018
    const limit = 9.5 * cost;
    const provider = await startMessagesProvider({ input: 1000, output: 1000 }, 400);
    const agent = await startServer((_req, res) => res.end());
    const stores = { redis: { url: redis.url, keyPrefix: `concurrent-${Date.now()}:` } };
    const config = {
      upstream: { url: agent.url },
      stores,
      telemetry: { enabled: false, agentType: 'fleet-agent' },
      egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } }, budgets: { limits: [{ window: 'month' as const, usd: limit }] } },
    };
    const sidecars = await Promise.all([startSidecar(config), startSidecar(config), startSidecar(config)]);
    try {
      for (const s of sidecars) await expect.poll(async () => (await request(`${s.adminUrl}/readyz`)).statusCode).toBe(200);
      const body = JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 1000, messages: [{ role: 'user', content: 'x'.repeat(3930) }] });
      const estimate = Math.ceil(Buffer.byteLength(body) / 4) * IN + 1000 * OUT;
      const statuses = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const res = await request(`${sidecars[i % 3]!.egressUrl}/anthropic/v1/messages`, { method: 'POST', body });
          await res.body.dump();
          return res.statusCode;
        }),
      );
      const ok = statuses.filter((s) => s === 200).length;
      expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
      expect(provider.calls()).toBe(ok);
      // Settled once every call has ended: what the month's spend says.
      const client = redisClient(redis.url, stores.redis.keyPrefix);
      await waitForRedis(client);
      const [key] = await client.keys(`${stores.redis.keyPrefix}budget:*`);
      const read = async () => client.hgetall(key!.slice(stores.redis.keyPrefix.length));
      await expect.poll(async () => Number((await read()).reserved), { timeout: 5000 }).toBe(0);
      const spent = Number((await read()).spent);
      client.disconnect();
      process.stdout.write(
        `budgets reserved atomically: 50 concurrent calls over 3 sidecars, limit ${limit.toFixed(3)} USD (9.5 calls of ${cost} USD, estimate ${estimate.toFixed(5)}): ` +
          `${ok} reached the provider, ${50 - ok} refused, spent ${spent.toFixed(4)} USD (${((spent / limit - 1) * 100).toFixed(1)}% over the limit)\n`,
      );
      expect(spent).toBeCloseTo(ok * cost, 9);
      expect(spent).toBeLessThanOrEqual(limit + estimate);
      expect(ok).toBeGreaterThanOrEqual(9);
    } finally {
      await Promise.all(sidecars.map((s) => s.close()));
      await agent.close();
      await provider.close();
    }
  });

  it('a call cut short settles what its usage says it used, and releases the rest', async () => {
    const provider: FakeProvider = await startFakeProvider();
    const s = await startSidecar({
      telemetry: { metrics: { otlp: false }, traces: { enabled: false }, logs: { otlp: false, stdout: false } },
      egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } }, budgets: { limits: [{ window: 'day', usd: 100 }] } },
    });
    try {
      // message_start reports 2,000 input tokens; the stream is cut before any output is counted.
      provider.next({ events: anthropicStream({ model: 'claude-sonnet-4-6', input: 2000, cacheRead: 0, cacheWrite: 0, outputs: [500] }), cutAfter: 3 });
      const res = await request(`${s.egressUrl}/anthropic/v1/messages`, {
        method: 'POST',
        body: JSON.stringify({ model: 'claude-sonnet-4-6', stream: true, max_tokens: 4000, messages: [] }),
      });
      await res.body.text().catch(() => undefined);
      await expect.poll(() => s.logs.lines.find((l) => l.event_type === 'llm_call')?.outcome).toBe('incomplete');
      const m = await (await request(`${s.adminUrl}/metrics`)).body.text();
      const ratio = sample(m, 'llm_budget_utilization_ratio', { scope: 'all', window: 'day' })!;
      // Spent: the input the stream reported (and the 1 output token of message_start), not the 4,000-token estimate.
      expect(ratio * 100).toBeCloseTo(2000 * IN + 1 * OUT, 9);
    } finally {
      await s.close();
      await provider.close();
    }
  });
});
