import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startSidecar } from './helpers.ts';
import {
  anthropicLimits,
  anthropicStream,
  openaiChatStream,
  openaiResponsesStream,
  sample,
  sse,
  startFakeProvider,
  type FakeProvider,
} from './fake-provider.ts';

// Shipped prices (USD per million tokens) of the models below, as the price table has them.
const SONNET = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 };
const GPT = { input: 2.5, output: 15, cached: 0.25 }; // gpt-5.4
const AGENT = 'support-agent';
const KEY = 'sk-ant-api03-test-key-never-logged';

let provider: FakeProvider;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;

async function call(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${sidecar.egressUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, bytes, json: () => JSON.parse(bytes.toString()) as Record<string, any> };
}

async function metrics(): Promise<string> {
  return (await request(`${sidecar.adminUrl}/metrics`)).body.text();
}

const usd = (tokens: number, perMillion: number) => (tokens * perMillion) / 1e6;

beforeAll(async () => {
  provider = await startFakeProvider();
  sidecar = await startSidecar({
    egress: { allowHttp: true, providers: { anthropic: { origin: provider.url }, openai: { origin: provider.url } } },
    telemetry: { serviceName: AGENT, metrics: { otlp: false }, traces: { enabled: false }, logs: { otlp: false, stdout: false } },
  });
});

afterAll(async () => {
  await sidecar?.close();
  await provider?.close();
});

describe('Anthropic Messages through the egress listener', () => {
  it('streams the provider bytes unchanged and counts cumulative usage once, cache tokens apart', async () => {
    const events = anthropicStream({ model: 'claude-sonnet-4-6', input: 12, cacheRead: 30_000, cacheWrite: 2000, outputs: [40, 87] });
    provider.next({ events, headers: anthropicLimits({ requests: [50, 10], tokens: [100_000, 25_000], input: [80_000, 60_000], output: [16_000, 4000] }) });
    const r = await call(
      '/anthropic/v1/messages',
      { model: 'claude-sonnet-4-6', max_tokens: 1024, stream: true, messages: [{ role: 'user', content: 'hi' }] },
      { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' },
    );
    expect(r.status).toBe(200);
    expect(r.bytes.equals(Buffer.from(events.join('')))).toBe(true);
    const seen = provider.seen.at(-1)!;
    expect(seen.path).toBe('/v1/messages');
    expect(seen.headers['x-api-key']).toBe(KEY);
    expect(seen.headers['x-forwarded-for']).toBeUndefined();

    const m = await metrics();
    const labels = { provider: 'anthropic', model: 'claude-sonnet-4-6', agent_type: AGENT };
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'input' })).toBe(12);
    // 87, not 40 + 87 (cumulative) and not 1 + 87 (message_start's early count).
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'output' })).toBe(87);
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'cache_read' })).toBe(30_000);
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'cache_creation' })).toBe(2000);
    expect(sample(m, 'anthropic_tokens_total', { agent_type: AGENT, model: 'claude-sonnet-4-6', token_type: 'output' })).toBe(87);
    expect(sample(m, 'llm_api_cost_usd_total', { ...labels, token_type: 'input' })).toBeCloseTo(usd(12, SONNET.input), 12);
    expect(sample(m, 'llm_api_cost_usd_total', { ...labels, token_type: 'output' })).toBeCloseTo(usd(87, SONNET.output), 12);
    expect(sample(m, 'llm_api_cost_usd_total', { ...labels, token_type: 'cache_read' })).toBeCloseTo(usd(30_000, SONNET.cacheRead), 12);
    expect(sample(m, 'anthropic_api_cost_total', { agent_type: AGENT, model: 'claude-sonnet-4-6', token_type: 'cache_creation' })).toBeCloseTo(
      usd(2000, SONNET.cacheWrite),
      12,
    );

    const quota = { provider: 'anthropic', model: 'claude-sonnet-4-6' };
    expect(sample(m, 'llm_quota_utilization_ratio', { ...quota, limit_type: 'requests' })).toBeCloseTo(0.8, 12);
    expect(sample(m, 'llm_quota_utilization_ratio', { ...quota, limit_type: 'input_tokens' })).toBeCloseTo(0.25, 12);
    expect(sample(m, 'llm_quota_remaining', { ...quota, limit_type: 'output_tokens' })).toBe(4000);
    expect(sample(m, 'llm_requests_total', { ...quota, operation: 'chat', outcome: 'complete' })).toBe(1);
    expect(m).toContain('gen_ai_client_operation_duration_seconds_bucket');
    expect(m).toContain('gen_ai_client_operation_time_to_first_chunk_seconds_bucket');
  });

  it('reads a gzip-compressed JSON answer and never logs the API key', async () => {
    provider.next({
      gzip: true,
      json: {
        id: 'msg_2',
        type: 'message',
        model: 'claude-haiku-4-5-20251001',
        content: [{ type: 'text', text: 'ok' }],
        stop_reason: 'end_turn',
        usage: {
          input_tokens: 5,
          output_tokens: 7,
          cache_read_input_tokens: 0,
          cache_creation_input_tokens: 100,
          cache_creation: { ephemeral_5m_input_tokens: 40, ephemeral_1h_input_tokens: 60 },
        },
      },
    });
    const r = await call(
      '/anthropic/v1/messages',
      { model: 'claude-haiku-4-5-20251001', max_tokens: 10, messages: [] },
      { 'x-api-key': KEY, 'accept-encoding': 'gzip' },
    );
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.bytes.equals(provider.lastBody())).toBe(true);
    // The copy is decompressed beside the response: its count may land just after the agent has the body.
    await expect.poll(() => sidecar.logs.lines.some((l) => l.event_type === 'llm_call' && l.model === 'claude-haiku-4-5-20251001')).toBe(true);
    const m = await metrics();
    const labels = { provider: 'anthropic', model: 'claude-haiku-4-5-20251001', agent_type: AGENT };
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'output' })).toBe(7);
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'cache_creation' })).toBe(100);
    // Haiku 4.5: 5-minute writes at $1.25, 1-hour writes at $2 per million (the dated id falls back to claude-haiku-4-5).
    expect(sample(m, 'llm_api_cost_usd_total', { ...labels, token_type: 'cache_creation' })).toBeCloseTo(usd(40, 1.25) + usd(60, 2), 12);
    const line = sidecar.logs.lines.find((l) => l.event_type === 'llm_call' && l.model === 'claude-haiku-4-5-20251001')!;
    expect(line).toMatchObject({ outcome: 'complete', status_code: 200, input_tokens: 5, output_tokens: 7, cache_creation_tokens: 100 });
    expect(JSON.stringify(sidecar.logs.lines)).not.toContain(KEY);
  });

  it('accounts a stream cut midway for what arrived and marks the call incomplete', async () => {
    const events = anthropicStream({ model: 'claude-opus-4-8', input: 300, cacheRead: 0, cacheWrite: 0, outputs: [25, 60] });
    const cut = events.findIndex((e) => e.includes('"output_tokens":60'));
    provider.next({ events, cutAfter: cut });
    const res = await request(`${sidecar.egressUrl}/anthropic/v1/messages`, {
      method: 'POST',
      body: JSON.stringify({ model: 'claude-opus-4-8', stream: true, max_tokens: 100, messages: [] }),
    });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    await expect
      .poll(() => sidecar.logs.lines.find((l) => l.event_type === 'llm_call' && l.model === 'claude-opus-4-8'))
      .toMatchObject({ outcome: 'incomplete', input_tokens: 300, output_tokens: 25 });
    const m = await metrics();
    const labels = { provider: 'anthropic', model: 'claude-opus-4-8' };
    expect(sample(m, 'llm_requests_total', { ...labels, outcome: 'incomplete' })).toBe(1);
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'output' })).toBe(25);
    expect(sample(m, 'llm_api_cost_usd_total', { ...labels, token_type: 'input' })).toBeCloseTo(usd(300, 5), 12);
  });

  it('counts the provider 429s and their Retry-After', async () => {
    provider.next({
      status: 429,
      headers: { 'retry-after': '17', ...anthropicLimits({ requests: [50, 0], tokens: [100, 0], input: [80, 0], output: [20, 0] }) },
      json: { type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } },
    });
    const r = await call('/anthropic/v1/messages', { model: 'claude-sonnet-5', max_tokens: 5, messages: [] });
    expect(r.status).toBe(429);
    expect(r.json().error.type).toBe('rate_limit_error');
    const m = await metrics();
    expect(sample(m, 'llm_rate_limited_total', { provider: 'anthropic', model: 'claude-sonnet-5', agent_type: AGENT })).toBe(1);
    expect(sample(m, 'llm_retry_after_seconds', { provider: 'anthropic', model: 'claude-sonnet-5' })).toBe(17);
    expect(sample(m, 'llm_quota_utilization_ratio', { provider: 'anthropic', model: 'claude-sonnet-5', limit_type: 'tokens' })).toBe(1);
    expect(sample(m, 'llm_requests_total', { provider: 'anthropic', model: 'claude-sonnet-5', outcome: 'error' })).toBe(1);
  });
});

describe('OpenAI through the egress listener', () => {
  it('adds include_usage to a streamed chat call without it, and keeps the usage chunk from the agent', async () => {
    const events = openaiChatStream({ model: 'gpt-5.4-2026-03-05', text: ['Hel', 'lo'], usage: { prompt: 1200, cached: 1000, completion: 9 } });
    provider.next({
      events,
      headers: {
        'x-ratelimit-limit-requests': '500',
        'x-ratelimit-remaining-requests': '499',
        'x-ratelimit-limit-tokens': '30000',
        'x-ratelimit-remaining-tokens': '28800',
        'x-ratelimit-reset-tokens': '2.4s',
      },
    });
    const r = await call(
      '/openai/v1/chat/completions',
      { messages: [{ role: 'user', content: 'hi' }], model: 'gpt-5.4', stream: true },
      { authorization: 'Bearer sk-proj-test' },
    );
    expect(r.status).toBe(200);
    const seen = provider.seen.at(-1)!;
    expect(seen.path).toBe('/v1/chat/completions');
    expect(seen.headers.authorization).toBe('Bearer sk-proj-test');
    expect(JSON.parse(seen.body)).toEqual({
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
      model: 'gpt-5.4',
      stream: true,
    });
    const usageChunk = events.find((e) => e.includes('"choices":[]'))!;
    expect(r.bytes.toString()).toBe(events.filter((e) => e !== usageChunk).join(''));

    const m = await metrics();
    const labels = { provider: 'openai', model: 'gpt-5.4', agent_type: AGENT };
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'input' })).toBe(200);
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'cache_read' })).toBe(1000);
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'output' })).toBe(9);
    expect(sample(m, 'llm_api_cost_usd_total', { ...labels, token_type: 'cache_read' })).toBeCloseTo(usd(1000, GPT.cached), 12);
    expect(sample(m, 'anthropic_tokens_total', { model: 'gpt-5.4', token_type: 'output' })).toBeUndefined();
    expect(sample(m, 'llm_quota_utilization_ratio', { provider: 'openai', model: 'gpt-5.4', limit_type: 'tokens' })).toBeCloseTo(0.04, 12);
  });

  it('passes a stream that asked for usage itself byte for byte', async () => {
    const events = openaiChatStream({ model: 'gpt-4o-mini', text: ['a', 'b', 'c'], usage: { prompt: 50, cached: 0, completion: 3 } });
    provider.next({ events });
    const body = { model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [] };
    const r = await call('/openai/v1/chat/completions', body);
    expect(JSON.parse(provider.seen.at(-1)!.body)).toEqual(body);
    expect(r.bytes.equals(Buffer.from(events.join('')))).toBe(true);
    expect(sample(await metrics(), 'llm_tokens_total', { provider: 'openai', model: 'gpt-4o-mini', token_type: 'output' })).toBe(3);
  });

  it('reads the Responses API usage from response.completed', async () => {
    const events = openaiResponsesStream({ model: 'gpt-5.5', input: 4000, cached: 3000, output: 20 });
    provider.next({ events });
    const r = await call('/openai/v1/responses', { model: 'gpt-5.5', input: 'hi', stream: true });
    expect(r.bytes.equals(Buffer.from(events.join('')))).toBe(true);
    const m = await metrics();
    const labels = { provider: 'openai', model: 'gpt-5.5' };
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'input' })).toBe(1000);
    expect(sample(m, 'llm_tokens_total', { ...labels, token_type: 'cache_read' })).toBe(3000);
    expect(sample(m, 'llm_api_cost_usd_total', { ...labels, token_type: 'output' })).toBeCloseTo(usd(20, 30), 12);
  });

  it('passes unmetered calls through and refuses paths under no provider', async () => {
    provider.next({ json: { object: 'list', data: [{ id: 'gpt-5.4' }] } });
    const list = await request(`${sidecar.egressUrl}/openai/v1/models`, { headers: { authorization: 'Bearer sk-proj-test' } });
    expect(list.statusCode).toBe(200);
    expect(((await list.body.json()) as { data: unknown[] }).data).toHaveLength(1);
    expect(provider.seen.at(-1)).toMatchObject({ method: 'GET', path: '/v1/models' });
    const unknown = await request(`${sidecar.egressUrl}/gemini/v1/models`);
    expect(unknown.statusCode).toBe(404);
    expect(((await unknown.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_EGRESS_ROUTE_UNKNOWN');
  });

  it('forwards an event with CRLF line ends and an unknown event type untouched', async () => {
    const events = [...openaiChatStream({ model: 'gpt-4.1', text: ['x'] }).slice(0, -1), ': keep-alive\r\n\r\n', sse('custom', 'text'), 'data: [DONE]\r\n\r\n'];
    provider.next({ events });
    const r = await call('/openai/v1/chat/completions', { model: 'gpt-4.1', stream: true, stream_options: { include_usage: false }, messages: [] });
    expect(r.bytes.toString()).toBe(events.join(''));
    expect(sample(await metrics(), 'llm_requests_total', { provider: 'openai', model: 'gpt-4.1', outcome: 'complete' })).toBe(1);
  });
});

describe('egress paths', () => {
  it('refuses a metered call on a non-canonical path (400) without contacting the provider, so no path skips the budget', async () => {
    const before = provider.seen.length;
    // (Dot segments never arrive: HTTP clients resolve them before sending.)
    for (const path of ['/anthropic//v1/messages', '/anthropic/v1/%6Dessages', '/openai/v1//chat/completions']) {
      const res = await call(path, { model: 'claude-sonnet-4-5', max_tokens: 10, messages: [] });
      expect(res.status, path).toBe(400);
      expect(res.json().error.code, path).toBe('SIDECAR_PATH_INVALID');
    }
    expect(provider.seen.length).toBe(before);
  });
});

describe('SseFrames: holding back events has a bound', () => {
  it('passes bytes on unchanged once an event grows past the cap, instead of holding without limit', async () => {
    const { SseFrames, MAX_HELD_BYTES } = await import('../src/egress/sse-frames.ts');
    const frames = new SseFrames();
    expect(frames.push(Buffer.from('data: {"a":1}\n\ndata: {"b"'))).toEqual([Buffer.from('data: {"a":1}\n\n')]);
    expect(frames.push(Buffer.from(':2}\n\n'))).toEqual([Buffer.from('data: {"b":2}\n\n')]);
    // Lines without the blank line that ends an event (some servers stream so).
    const line = Buffer.from(`data: ${'x'.repeat(100)}\n`);
    let passed = 0;
    let pushed = 0;
    for (let i = 0; i < 2000; i++) {
      pushed += line.length;
      for (const f of frames.push(line)) passed += f.length;
    }
    expect(frames.passthrough).toBe(true);
    expect(pushed - passed).toBe(0);
    expect(pushed).toBeGreaterThan(MAX_HELD_BYTES);
  });
});
