import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startSidecar } from './helpers.ts';
import { anthropicStream, openaiChatStream, startFakeProvider, type FakeProvider } from './fake-provider.ts';
import { startOtlpReceiver, type DecodedMetric, type OtlpReceiver } from './otlp-receiver.ts';

const AGENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const AGENT_SPAN = '00f067aa0ba902b7';

let provider: FakeProvider;
let receiver: OtlpReceiver;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;

beforeAll(async () => {
  provider = await startFakeProvider();
  receiver = await startOtlpReceiver();
  sidecar = await startSidecar({
    egress: { allowHttp: true, providers: { anthropic: { origin: provider.url }, openai: { origin: provider.url } } },
    telemetry: {
      endpoint: receiver.endpoint,
      serviceName: 'traced-agent',
      traces: { scheduledDelay: '50ms' },
      metrics: { exportInterval: '200ms' },
      logs: { otlp: false },
    },
  });
});

afterAll(async () => {
  await sidecar?.close();
  await provider?.close();
  await receiver?.stop();
});

describe('LLM calls in OpenTelemetry', () => {
  it('exports a CLIENT span per call, named {operation} {model}, a child of the traceparent the agent sent; the provider receives the span’s traceparent', async () => {
    provider.next({ events: anthropicStream({ model: 'claude-sonnet-5', input: 100, cacheRead: 2000, cacheWrite: 300, outputs: [10, 42] }) });
    const seenBefore = provider.seen.length;
    const res = await request(`${sidecar.egressUrl}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { traceparent: `00-${AGENT_TRACE}-${AGENT_SPAN}-01`, tracestate: 'vendor=agent', 'x-api-key': 'k' },
      body: JSON.stringify({
        model: 'claude-sonnet-5',
        max_tokens: 512,
        temperature: 0.2,
        stream: true,
        messages: [{ role: 'user', content: 'secret prompt' }],
      }),
    });
    await res.body.text();
    const s = (await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.name === 'chat claude-sonnet-5'))).find(
      (x) => x.name === 'chat claude-sonnet-5',
    )!;
    expect(s.kindName).toBe('CLIENT');
    expect(s.traceId).toBe(AGENT_TRACE);
    expect(s.parentSpanId).toBe(AGENT_SPAN);
    // One trace across the hops: the provider's side of the call is a child of the sidecar's span, not of the agent's.
    const sent = provider.seen[seenBefore]!.headers;
    expect(sent.traceparent).toBe(`00-${AGENT_TRACE}-${s.spanId}-01`);
    expect(sent.tracestate).toBe('vendor=agent');
    expect(s.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': 'claude-sonnet-5',
      'gen_ai.response.model': 'claude-sonnet-5',
      'gen_ai.response.id': 'msg_01',
      'gen_ai.request.max_tokens': 512,
      'gen_ai.request.temperature': 0.2,
      'gen_ai.response.finish_reasons': ['end_turn'],
      // Input as the conventions count it: cached input included.
      'gen_ai.usage.input_tokens': 2400,
      'gen_ai.usage.output_tokens': 42,
      'gen_ai.usage.cache_read.input_tokens': 2000,
      'gen_ai.usage.cache_creation.input_tokens': 300,
      'http.response.status_code': 200,
    });
    // claude-sonnet-5: $2 input, $10 output, $0.20 cache read, $2.50 cache write per million.
    expect(s.attributes['agent_sidecar.llm.cost_usd']).toBeCloseTo((100 * 2 + 42 * 10 + 2000 * 0.2 + 300 * 2.5) / 1e6, 12);
    expect(s.status.codeName).toBe('UNSET');
    expect(JSON.stringify(s.attributes)).not.toContain('secret prompt');
  });

  it('starts a trace of its own for a call without a traceparent, and the provider receives that trace', async () => {
    provider.next({ json: { id: 'msg_02', type: 'message', model: 'claude-haiku-5', stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 1 } } });
    const seenBefore = provider.seen.length;
    const res = await request(`${sidecar.egressUrl}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'k' },
      body: JSON.stringify({ model: 'claude-haiku-5', max_tokens: 8, messages: [] }),
    });
    await res.body.text();
    const s = (await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.name === 'chat claude-haiku-5'))).find(
      (x) => x.name === 'chat claude-haiku-5',
    )!;
    expect(s.parentSpanId).toBe('');
    expect(provider.seen[seenBefore]!.headers.traceparent).toBe(`00-${s.traceId}-${s.spanId}-01`);
  });

  it('continues the innermost of several traceparent headers naming one trace (an SDK and its HTTP client each add one), and no other mix', async () => {
    const sdkSpan = '1111111111111111';
    const fetchSpan = '2222222222222222';
    const cases: Array<[string[], string | undefined]> = [
      [[`00-${AGENT_TRACE}-${sdkSpan}-01`, `00-${AGENT_TRACE}-${fetchSpan}-01`], fetchSpan],
      // Two traces, or a value that is not a traceparent: invalid, as W3C Trace Context says.
      [[`00-${AGENT_TRACE}-${sdkSpan}-01`, `00-${'3'.repeat(32)}-${fetchSpan}-01`], undefined],
      [[`00-${AGENT_TRACE}-${sdkSpan}-01`, 'garbage'], undefined],
    ];
    for (const [values, parent] of cases) {
      const model = `claude-multi-${values.length}-${parent ?? 'none'}-${cases.findIndex((c) => c[0] === values)}`;
      provider.next({ json: { id: 'msg_m', type: 'message', model, stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } } });
      const res = await request(`${sidecar.egressUrl}/anthropic/v1/messages`, {
        method: 'POST',
        headers: [...values.flatMap((v) => ['traceparent', v]), 'x-api-key', 'k'],
        body: JSON.stringify({ model, max_tokens: 8, messages: [] }),
      });
      await res.body.text();
      const s = (await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.name === `chat ${model}`))).find((x) => x.name === `chat ${model}`)!;
      if (parent === undefined) {
        expect(s.parentSpanId, model).toBe('');
        expect(s.traceId, model).not.toBe(AGENT_TRACE);
      } else {
        expect(s.parentSpanId, model).toBe(parent);
        expect(s.traceId, model).toBe(AGENT_TRACE);
      }
    }
  });

  it('records the GenAI histograms by gen_ai.token.type, and the error of a failed call', async () => {
    provider.next({ events: openaiChatStream({ model: 'gpt-5.4-mini', text: ['a'], usage: { prompt: 64, cached: 0, completion: 5 } }) });
    await (
      await request(`${sidecar.egressUrl}/openai/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'gpt-5.4-mini', stream: true, messages: [] }),
      })
    ).body.text();
    provider.next({ status: 500, json: { error: { message: 'boom', type: 'server_error' } } });
    await (
      await request(`${sidecar.egressUrl}/openai/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gpt-5.4-mini', messages: [] }) })
    ).body.text();

    const points = await receiver.waitFor(receiver.metrics, (m) =>
      m.some((p) => p.name === 'gen_ai.client.operation.duration' && p.attributes['error.type'] === '500'),
    );
    const usage = (type: string) =>
      points
        .filter(
          (p) =>
            p.name === 'gen_ai.client.token.usage' && p.attributes['gen_ai.token.type'] === type && p.attributes['gen_ai.request.model'] === 'gpt-5.4-mini',
        )
        .at(-1);
    expect(usage('input')).toMatchObject({ type: 'histogram', unit: '{token}', count: 1, sum: 64 });
    expect(usage('output')).toMatchObject({ count: 1, sum: 5 });
    expect(usage('input')!.attributes).toMatchObject({
      'gen_ai.provider.name': 'openai',
      'gen_ai.operation.name': 'chat',
      'gen_ai.response.model': 'gpt-5.4-mini',
      'server.address': '127.0.0.1',
    });
    const ttfc = points.filter((p) => p.name === 'gen_ai.client.operation.time_to_first_chunk').at(-1)!;
    expect(ttfc).toMatchObject({ unit: 's', type: 'histogram' });
    const [failed] = (
      await receiver.waitFor(receiver.spans, (s) => s.some((x) => x.name === 'chat gpt-5.4-mini' && x.attributes['error.type'] === '500'))
    ).filter((x) => x.name === 'chat gpt-5.4-mini' && x.attributes['error.type'] === '500');
    expect(failed!.status.codeName).toBe('ERROR');
    expect(failed!.attributes['http.response.status_code']).toBe(500);
  });

  it('gen_ai.client.token.usage has input (cached input included) and output only, so a sum over types counts each token once', async () => {
    provider.next({ events: anthropicStream({ model: 'claude-opus-4-6', input: 7, cacheRead: 5000, cacheWrite: 600, outputs: [3, 11] }) });
    await (
      await request(`${sidecar.egressUrl}/anthropic/v1/messages`, {
        method: 'POST',
        body: JSON.stringify({ model: 'claude-opus-4-6', stream: true, max_tokens: 64, messages: [] }),
      })
    ).body.text();
    provider.next({
      json: {
        id: 'chatcmpl-1',
        object: 'chat.completion',
        model: 'gpt-5.4',
        choices: [],
        usage: { prompt_tokens: 900, completion_tokens: 8, prompt_tokens_details: { cached_tokens: 800 } },
      },
    });
    await (
      await request(`${sidecar.egressUrl}/openai/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gpt-5.4', messages: [] }) })
    ).body.text();

    const of = (points: readonly DecodedMetric[], model: string) =>
      points.filter((p) => p.name === 'gen_ai.client.token.usage' && p.attributes['gen_ai.request.model'] === model);
    const points = await receiver.waitFor(receiver.metrics, (m) => of(m, 'claude-opus-4-6').length > 0 && of(m, 'gpt-5.4').length > 0);
    for (const [model, input, output] of [
      ['claude-opus-4-6', 7 + 5000 + 600, 11],
      ['gpt-5.4', 900, 8],
    ] as const) {
      const usage = of(points, model);
      expect(new Set(usage.map((p) => p.attributes['gen_ai.token.type']))).toEqual(new Set(['input', 'output']));
      expect(usage.filter((p) => p.attributes['gen_ai.token.type'] === 'input').at(-1)).toMatchObject({ count: 1, sum: input });
      expect(usage.filter((p) => p.attributes['gen_ai.token.type'] === 'output').at(-1)).toMatchObject({ count: 1, sum: output });
    }
    // The cache split stays in llm_tokens_total (at /metrics as at the collector).
    const text = await (await request(`${sidecar.adminUrl}/metrics`)).body.text();
    expect(text).toMatch(/llm_tokens_total\{[^}]*model="claude-opus-4-6"[^}]*token_type="cache_read"[^}]*\} 5000\n/);
    expect(text).toMatch(/llm_tokens_total\{[^}]*model="claude-opus-4-6"[^}]*token_type="cache_creation"[^}]*\} 600\n/);
    expect(text).toMatch(/llm_tokens_total\{[^}]*model="claude-opus-4-6"[^}]*token_type="input"[^}]*\} 7\n/);
    expect(text).not.toMatch(/gen_ai_client_token_usage[^{]*\{[^}]*gen_ai_token_type="cache_/);
  });

  it('captures prompts and completions, when asked, only through data protection', async () => {
    const captured = await startSidecar({
      egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } }, capture: { prompts: true, completions: true } },
      telemetry: {
        endpoint: receiver.endpoint,
        serviceName: 'captured-agent',
        traces: { scheduledDelay: '50ms' },
        metrics: { otlp: false },
        logs: { otlp: false },
      },
    });
    try {
      provider.next({
        events: anthropicStream({
          model: 'claude-haiku-4-5',
          input: 9,
          cacheRead: 0,
          cacheWrite: 0,
          outputs: [4],
          text: ['Write to ', 'carol@example.org', ' today'],
        }),
      });
      await (
        await request(`${captured.egressUrl}/anthropic/v1/messages`, {
          method: 'POST',
          body: JSON.stringify({
            model: 'claude-haiku-4-5',
            stream: true,
            max_tokens: 20,
            system: 'be brief',
            messages: [{ role: 'user', content: 'my card is 4111 1111 1111 1111, mail bob@example.com' }],
          }),
        })
      ).body.text();
      const span = (await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.resource['service.name'] === 'captured-agent'))).find(
        (x) => x.resource['service.name'] === 'captured-agent',
      )!;
      const input = String(span.attributes['gen_ai.input.messages']);
      const output = String(span.attributes['gen_ai.output.messages']);
      expect(input).toContain('be brief');
      expect(input).toContain('[REDACTED:card]');
      expect(input).toContain('[REDACTED:email]');
      expect(input).not.toMatch(/4111|bob@example/);
      expect(JSON.parse(output)).toEqual([{ role: 'assistant', parts: [{ type: 'text', content: 'Write to [REDACTED:email] today' }] }]);
    } finally {
      await captured.close();
    }
  });
});
