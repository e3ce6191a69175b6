import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { SidecarConfigInput } from '../src/config/index.ts';
import { windowOf } from '../src/egress/index.ts';
import { startServer, startSidecar } from './helpers.ts';
import { anthropicStream, sample, startFakeProvider, type FakeProvider } from './fake-provider.ts';
import { startRedis, type RedisServer } from './redis-server.ts';

// claude-sonnet-4-6 at $3 input and $15 output per million tokens.
const CALL_USD = (1000 * 3 + 1000 * 15) / 1e6; // 0.018 per call below

let provider: FakeProvider;
let redis: RedisServer;

beforeAll(async () => {
  provider = await startFakeProvider();
  redis = await startRedis();
});

afterAll(async () => {
  await provider?.close();
  await redis?.close();
});

type Limits = NonNullable<NonNullable<NonNullable<SidecarConfigInput['egress']>['budgets']>['limits']>;

function egressConfig(limits: Limits, extra: { failMode?: 'open' | 'closed' } = {}) {
  return { allowHttp: true, providers: { anthropic: { origin: provider.url } }, budgets: { limits, ...extra } };
}

async function callSonnet(url: string, model = 'claude-sonnet-4-6') {
  provider.next({ events: anthropicStream({ model, input: 1000, cacheRead: 0, cacheWrite: 0, outputs: [1000] }) });
  const res = await request(`${url}/anthropic/v1/messages`, { method: 'POST', body: JSON.stringify({ model, stream: true, max_tokens: 2000, messages: [] }) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

/** The budget's spend lands once the call's response has been read; wait for the call's log line. */
async function settled(s: Awaited<ReturnType<typeof startSidecar>>, calls: number): Promise<void> {
  await expect.poll(() => s.logs.lines.filter((l) => l.event_type === 'llm_call' && l.outcome === 'complete').length).toBe(calls);
}

describe('budgets', () => {
  it('warns at the soft limit, then refuses with 429 before anything reaches the provider', async () => {
    const s = await startSidecar({
      egress: egressConfig([{ window: 'day', usd: 2 * CALL_USD - 0.001 }]),
      telemetry: { serviceName: 'budget-agent', metrics: { otlp: false }, traces: { enabled: false }, logs: { otlp: false, stdout: false } },
    });
    try {
      expect((await callSonnet(s.egressUrl)).status).toBe(200);
      await settled(s, 1);
      // 0.018 of 0.035: under the 80% soft limit.
      expect(s.logs.lines.some((l) => l.event_type === 'llm_budget')).toBe(false);
      expect((await callSonnet(s.egressUrl)).status).toBe(200);
      await settled(s, 2);
      const events = s.logs.lines.filter((l) => l.event_type === 'llm_budget');
      expect(events.map((e) => e.threshold)).toEqual(['soft', 'hard']);
      expect(events[0]).toMatchObject({ agent_type: 'budget-agent', scope: 'all', window: 'day' });

      const before = provider.seen.length;
      const refused = await request(`${s.egressUrl}/anthropic/v1/messages`, {
        method: 'POST',
        body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 5, messages: [] }),
      });
      const body = (await refused.body.json()) as { error: { code: string; budget: Record<string, unknown> } };
      expect(refused.statusCode).toBe(429);
      expect(body.error.code).toBe('SIDECAR_BUDGET_EXCEEDED');
      expect(body.error.budget).toMatchObject({ scope: 'all', window: 'day', agent_type: 'budget-agent' });
      expect(refused.headers['x-should-retry']).toBe('false');
      const until = Math.ceil((windowOf('day', Date.now()).endsAt - Date.now()) / 1000);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(until - 2);
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(until + 1);
      expect(provider.seen.length).toBe(before);

      const m = await (await request(`${s.adminUrl}/metrics`)).body.text();
      const attrs = { agent_type: 'budget-agent', scope: 'all', window: 'day' };
      expect(sample(m, 'llm_budget_utilization_ratio', attrs)).toBeCloseTo((2 * CALL_USD) / (2 * CALL_USD - 0.001), 9);
      expect(sample(m, 'llm_budget_refused_total', attrs)).toBe(1);
      expect(sample(m, 'llm_budget_soft_limit_reached_total', attrs)).toBe(1);
      expect(s.logs.lines.find((l) => l.event_type === 'llm_call' && l.outcome === 'refused')).toMatchObject({ error_type: 'SIDECAR_BUDGET_EXCEEDED' });
    } finally {
      await s.close();
    }
  });

  it('limits one model without holding back the others', async () => {
    const s = await startSidecar({ egress: egressConfig([{ window: 'hour', usd: 0.001, model: 'claude-opus-*' }]) });
    try {
      expect((await callSonnet(s.egressUrl, 'claude-opus-5')).status).toBe(200);
      await settled(s, 1);
      const opus = await request(`${s.egressUrl}/anthropic/v1/messages`, { method: 'POST', body: JSON.stringify({ model: 'claude-opus-5', messages: [] }) });
      expect(opus.statusCode).toBe(429);
      expect(((await opus.body.json()) as { error: { budget: { scope: string } } }).error.budget.scope).toBe('model:claude-opus-*');
      expect((await callSonnet(s.egressUrl, 'claude-sonnet-5')).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('shares the spend of an agent between sidecars through Redis, and fails closed when asked to', async () => {
    const stores = { redis: { url: redis.url, keyPrefix: `budget-test-${Date.now()}:` } };
    const limits: Limits = [{ window: 'month', usd: CALL_USD / 2 }];
    const telemetry = { enabled: false, agentType: 'shared-agent' };
    // An agent that answers, so that /readyz says when Redis is connected.
    const agent = await startServer((_req, res) => res.end());
    const upstream = { url: agent.url };
    const a = await startSidecar({ upstream, stores, telemetry, egress: egressConfig(limits, { failMode: 'closed' }) });
    const b = await startSidecar({ upstream, stores, telemetry, egress: egressConfig(limits) });
    try {
      await expect.poll(async () => (await request(`${a.adminUrl}/readyz`)).statusCode).toBe(200);
      expect((await callSonnet(a.egressUrl)).status).toBe(200);
      await settled(a, 1);
      const other = await request(`${b.egressUrl}/anthropic/v1/messages`, {
        method: 'POST',
        body: JSON.stringify({ model: 'claude-sonnet-4-6', messages: [] }),
      });
      expect(other.statusCode).toBe(429);
      expect(((await other.body.json()) as { error: { budget: { spent_usd: number } } }).error.budget.spent_usd).toBeCloseTo(CALL_USD, 9);

      await redis.stop();
      const down = await request(`${a.egressUrl}/anthropic/v1/messages`, {
        method: 'POST',
        body: JSON.stringify({ model: 'claude-sonnet-4-6', messages: [] }),
      });
      expect(down.statusCode).toBe(503);
      expect(((await down.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_STORE_UNAVAILABLE');
    } finally {
      await a.close();
      await b.close();
      await agent.close();
      await redis.start();
    }
  });
});
