import { Writable } from 'node:stream';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkSidecar } from '../src/check.ts';
import { validateConfig } from '../src/config/index.ts';
import {
  createBudgets,
  createCapture,
  createMemoryBudgetStore,
  createPriceBook,
  createUsageReader,
  quotaReadings,
  retryAfterSeconds,
  SseFrames,
  windowOf,
  type BudgetStatus,
} from '../src/egress/index.ts';
import { providersOf } from '../src/egress/providers.ts';
import { inspectRequest } from '../src/egress/request.ts';
import { createTee } from '../src/egress/tee.ts';
import type { SidecarError } from '../src/errors/index.ts';
import { createLogger } from '../src/log/index.ts';
import { sse } from './fake-provider.ts';
import { thrownBy } from './thrown.ts';

const usage = (u: Partial<Record<'input' | 'output' | 'cacheRead' | 'cacheWrite' | 'cacheWrite1h', number>>) => ({
  input: 0,
  output: 0,
  cacheRead: 0,
  cacheWrite: 0,
  cacheWrite1h: 0,
  ...u,
});
const quiet = () => createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));

describe('prices', () => {
  const book = createPriceBook({ 'claude-sonnet-4-6': { input: 1, output: 2 }, 'my-finetune': { input: 10, output: 20, cacheRead: 1 } });

  it('finds dated snapshots and -latest aliases under their model, and nothing by a mere prefix', () => {
    expect(book.priceOf('claude-haiku-4-5-20251001')).toEqual(book.priceOf('claude-haiku-4-5'));
    expect(book.priceOf('gpt-4o-2024-08-06')).toEqual(book.priceOf('gpt-4o'));
    expect(book.priceOf('claude-3-7-sonnet-latest')).toEqual(book.priceOf('claude-3-7-sonnet'));
    expect(book.priceOf('gpt-5.4-micro')).toBeUndefined();
    expect(book.cost('no-such-model', usage({ input: 10 }))).toBeUndefined();
  });

  it('lets configuration replace a shipped price and add a model; a missing cache price is the input price', () => {
    expect(book.cost('claude-sonnet-4-6', usage({ input: 1e6, output: 1e6, cacheRead: 1e6 }))).toMatchObject({ input: 1, output: 2, cache_read: 1, total: 4 });
    expect(book.cost('my-finetune', usage({ cacheRead: 2e6, cacheWrite: 1e6 }))).toMatchObject({ cache_read: 2, cache_creation: 10, total: 12 });
  });

  it('bills a whole call at long-context rates once its input, cache included, passes the threshold', () => {
    const shipped = createPriceBook({});
    const short = shipped.cost('claude-sonnet-4-5', usage({ input: 100_000, cacheRead: 100_000, output: 1000 }))!;
    const long = shipped.cost('claude-sonnet-4-5', usage({ input: 100_001, cacheRead: 100_000, output: 1000 }))!;
    expect(short.input).toBeCloseTo(0.3, 12);
    expect(long.input).toBeCloseTo((100_001 * 6) / 1e6, 12);
    expect(long.output).toBeCloseTo((1000 * 22.5) / 1e6, 12);
    expect(long.cache_read).toBeCloseTo((100_000 * 0.6) / 1e6, 12);
  });
});

describe('usage readers', () => {
  const opts = { captureText: true, maxChars: 8, addedUsage: false };

  it('Anthropic: the latest message_delta wins for every field, and the cache write splits into 5-minute and 1-hour', () => {
    const r = createUsageReader('anthropic.messages', opts);
    r.event(
      undefined,
      JSON.stringify({ type: 'message_start', message: { id: 'm', model: 'x', usage: { input_tokens: 5, output_tokens: 1, cache_read_input_tokens: 7 } } }),
    );
    r.event('content_block_delta', JSON.stringify({ delta: { type: 'text_delta', text: 'Hello, world' } }));
    r.event('message_delta', JSON.stringify({ usage: { output_tokens: 30, cache_creation: { ephemeral_5m_input_tokens: 3, ephemeral_1h_input_tokens: 4 } } }));
    r.event('message_delta', JSON.stringify({ usage: { output_tokens: 31, input_tokens: 5, cache_read_input_tokens: 7 } }));
    expect(r.state.usage).toEqual(usage({ input: 5, output: 31, cacheRead: 7, cacheWrite: 7, cacheWrite1h: 4 }));
    expect(r.state.text).toBe('Hello, w');
    expect(r.state.finished).toBe(false);
    r.event('message_stop', '{}');
    expect(r.state.finished).toBe(true);
  });

  it('OpenAI chat: usage on a chunk that still has choices counts, and is never kept from the agent', () => {
    const r = createUsageReader('openai.chat', { ...opts, addedUsage: true });
    const drop = r.event(
      undefined,
      JSON.stringify({
        model: 'm',
        choices: [{ index: 0, delta: { content: 'x' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 9, completion_tokens: 2 },
      }),
    );
    expect(drop).toBe(false);
    expect(r.state.usage).toEqual(usage({ input: 9, output: 2 }));
    expect(r.state.finishReasons).toEqual(['stop']);
    expect(r.event(undefined, JSON.stringify({ model: 'm', choices: [], usage: { prompt_tokens: 9, completion_tokens: 2 } }))).toBe(true);
  });
});

describe('the response tee', () => {
  it('reads a compressed event stream in any chunking, and a stream cut inside the compressed data', async () => {
    const wire = [
      sse('message_start', { type: 'message_start', message: { id: 'm', model: 'x', usage: { input_tokens: 7, output_tokens: 1 } } }),
      sse('message_delta', { type: 'message_delta', usage: { output_tokens: 12 } }),
      sse('message_stop', { type: 'message_stop' }),
    ].join('');
    for (const [encoding, compress] of [
      ['gzip', gzipSync],
      ['br', brotliCompressSync],
      ['deflate', deflateSync],
    ] as const) {
      const bytes = compress(Buffer.from(wire));
      const reader = createUsageReader('anthropic.messages', { captureText: false, maxChars: 0, addedUsage: false });
      const tee = createTee({ 'content-type': 'text/event-stream', 'content-encoding': encoding }, reader, false, (what) => expect.fail(what));
      for (let i = 0; i < bytes.length; i += 5) expect(tee.push(bytes.subarray(i, i + 5))).toEqual(bytes.subarray(i, i + 5));
      await tee.end().read;
      expect([encoding, reader.state.usage?.output, reader.state.finished]).toEqual([encoding, 12, true]);
    }
    const cut = createUsageReader('anthropic.messages', { captureText: false, maxChars: 0, addedUsage: false });
    const problems: string[] = [];
    const tee = createTee({ 'content-type': 'text/event-stream', 'content-encoding': 'gzip' }, cut, false, (what) => problems.push(what));
    // Deltas between start and stop, of text that compresses poorly, so that the cut falls between them.
    const deltas = Array.from({ length: 200 }, (_, i) =>
      sse('content_block_delta', { delta: { type: 'text_delta', text: (i * 7919).toString(36).repeat(3) } }),
    ).join('');
    const gz = gzipSync(Buffer.from(wire.replace('event: message_delta', `${deltas}event: message_delta`)));
    tee.push(gz.subarray(0, Math.floor(gz.length / 2)));
    await tee.abort();
    expect(cut.state.usage?.input).toBe(7);
    expect(cut.state.finished).toBe(false);
    // A cut is the call's outcome (incomplete), not a body the sidecar failed to read.
    expect(problems).toEqual([]);
  });
});

describe('SSE framing (for the usage chunk the sidecar asked for)', () => {
  it('splits LF, CRLF and CR events across any chunking, and holds back an unfinished one', () => {
    const wire = `${sse(undefined, '{"a":1}')}data: b\r\n\r\ndata: c\r\rdata: unfinished`;
    for (const size of [1, 2, 3, 7, wire.length]) {
      const f = new SseFrames();
      const frames: string[] = [];
      for (let i = 0; i < wire.length; i += size) frames.push(...f.push(Buffer.from(wire.slice(i, i + size))).map(String));
      expect(frames).toEqual(['data: {"a":1}\n\n', 'data: b\r\n\r\n', 'data: c\r\r']);
      expect(String(f.rest())).toBe('data: unfinished');
    }
  });
});

describe('requests', () => {
  const [anthropic, openai] = providersOf(validateConfig({}).egress);
  const chat = { name: 'chat', api: 'openai.chat' } as const;

  it('inserts include_usage after the opening brace of a streamed chat request without stream_options', () => {
    const r = inspectRequest(openai!, chat, Buffer.from('  {"model":"gpt-5.4","stream":true,"messages":[]}'));
    expect(r.addedUsage).toBe(true);
    expect(JSON.parse(r.body.toString())).toEqual({ stream_options: { include_usage: true }, model: 'gpt-5.4', stream: true, messages: [] });
    expect(inspectRequest(openai!, chat, Buffer.from('{"model":"m","stream":true,"stream_options":{}}')).addedUsage).toBe(false);
    expect(inspectRequest(openai!, chat, Buffer.from('{"model":"m"}')).addedUsage).toBe(false);
    const notJson = inspectRequest(anthropic!, { name: 'chat', api: 'anthropic.messages' }, Buffer.from('not json'));
    expect([notJson.model, notJson.body.toString()]).toEqual([undefined, 'not json']);
  });
});

describe('quota headers', () => {
  it('reads both providers and Retry-After as seconds or a date', () => {
    expect(quotaReadings('openai', { 'x-ratelimit-limit-requests': '60', 'x-ratelimit-remaining-requests': '59', 'x-ratelimit-limit-tokens': 'n/a' })).toEqual([
      { limitType: 'requests', limit: 60, remaining: 59 },
    ]);
    expect(quotaReadings('anthropic', { 'anthropic-ratelimit-output-tokens-remaining': '5' })).toEqual([
      { limitType: 'output_tokens', limit: undefined, remaining: 5 },
    ]);
    expect(retryAfterSeconds('30')).toBe(30);
    expect(retryAfterSeconds(new Date(Date.UTC(2030, 0, 1, 0, 0, 10)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(10);
    expect(retryAfterSeconds('soon')).toBeUndefined();
  });
});

describe('budget windows', () => {
  it('are calendar windows in UTC', () => {
    const t = Date.UTC(2026, 11, 31, 23, 30);
    expect(windowOf('hour', t)).toEqual({ id: '2026-12-31T23', endsAt: Date.UTC(2027, 0, 1) });
    expect(windowOf('day', t)).toEqual({ id: '2026-12-31', endsAt: Date.UTC(2027, 0, 1) });
    expect(windowOf('month', t)).toEqual({ id: '2026-12', endsAt: Date.UTC(2027, 0, 1) });
  });

  it('start from nothing in the next window', async () => {
    let now = Date.UTC(2026, 5, 1, 10, 59);
    const statuses: BudgetStatus[] = [];
    const budgets = createBudgets({
      config: { limits: [{ window: 'hour', usd: 1 }], soft: 0.8, estimate: { outputTokens: 4096, bytesPerToken: 4 }, failMode: 'open' },
      agentType: 'a',
      store: createMemoryBudgetStore(() => now),
      logger: quiet(),
      hooks: { status: (s) => statuses.push(s), refused() {}, soft() {} },
      now: () => now,
    });
    (await budgets.reserve('m', 0.5)).settle(1.5);
    await new Promise((r) => setImmediate(r));
    expect(await budgets.reserve('m', 0.5).catch((e: SidecarError) => e.code)).toBe('SIDECAR_BUDGET_EXCEEDED');
    now += 60_000;
    await expect(budgets.reserve('m', 0.5)).resolves.toBeDefined();
    expect(statuses.at(-1)).toEqual({ scope: 'all', window: 'hour', limitUsd: 1, spentUsd: 0 });
  });
});

describe('capture', () => {
  const config = { prompts: true, completions: true, maxChars: 42 };

  it('refuses to start without data protection of telemetry, and validate says so as run would', async () => {
    expect(thrownBy(() => createCapture(config, undefined)).code).toBe('SIDECAR_CONFIG_INVALID');
    const capture = { egress: { capture: { completions: true } } };
    await expect(checkSidecar(validateConfig({ ...capture, protection: { telemetry: { enabled: false } } }))).rejects.toMatchObject({
      code: 'SIDECAR_CONFIG_INVALID',
    });
    await expect(checkSidecar(validateConfig(capture))).resolves.toEqual([]);
    expect(createCapture({ ...config, prompts: false, completions: false }, undefined)).toBeUndefined();
  });

  it('protects the whole text before cutting it to maxChars', () => {
    const capture = createCapture(config, (t) => t.replace(/\d{4} \d{4} \d{4} \d{4}/g, '[card]'))!;
    const out = capture.prompt('openai.chat', { messages: [{ role: 'user', content: 'pay with 4111 1111 1111 1111 now' }] });
    expect(out).toBe('[{"role":"user","content":"pay with [card]');
    expect(createCapture({ ...config, maxChars: 200 }, (t) => t.replaceAll('4111', '####'))!.completion('card 4111')).toBe(
      '[{"role":"assistant","parts":[{"type":"text","content":"card ####"}]}]',
    );
  });
});

describe('egress configuration', () => {
  it('refuses http:// origins unless allowHttp, and two providers on one route', () => {
    const problems = (doc: unknown) => (thrownBy(() => validateConfig(doc)).details as { problems: string[] }).problems;
    expect(problems({ egress: { providers: { openai: { origin: 'http://127.0.0.1:1' } } } })[0]).toMatch(/^egress\.providers\.openai\.origin: /);
    expect(() => validateConfig({ egress: { allowHttp: true, providers: { openai: { origin: 'http://127.0.0.1:1' } } } })).not.toThrow();
    expect(problems({ egress: { providers: { openai: { route: '/anthropic' } } } })[0]).toMatch(/^egress\.providers\.openai\.route: /);
    expect(problems({ egress: { budgets: { limits: [{ window: 'week', usd: 1 }] } } })[0]).toMatch(/^egress\.budgets\.limits\.0\.window: /);
    expect(problems({ egress: { protectPrompts: 'nope' } })[0]).toMatch(/^egress\.protectPrompts: names no rule set/);
    expect(() => validateConfig({ egress: { protectPrompts: 'default' } })).not.toThrow();
  });
});
