import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { CLEAN_RUN_ENV, freePort, spawnCli, waitForStartup } from './helpers.ts';
import { startFakeProvider, type FakeProvider } from './fake-provider.ts';
import { startOtlpReceiver, type DecodedSpan, type OtlpReceiver } from './otlp-receiver.ts';

// Zero-code, end to end, with real parts: `run --` starts a Node.js agent (an HTTP server
// using the official Anthropic SDK) under the OpenTelemetry auto-instrumentation hook; one
// request from a client makes one trace across the sidecar's ingress, the agent and its LLM
// call through the egress listener, and the agent's own spans reach the collector through
// the relay, protected.

const AGENT = fileURLToPath(new URL('./fixtures/zero-code-agent.mjs', import.meta.url));

let provider: FakeProvider;
let receiver: OtlpReceiver;
let config: string;

beforeAll(async () => {
  provider = await startFakeProvider();
  receiver = await startOtlpReceiver();
  config = join(os.tmpdir(), `zero-code-${process.pid}.yaml`);
  writeFileSync(
    config,
    [
      'listen: { address: 127.0.0.1:0 }',
      'admin: { address: 127.0.0.1:0 }',
      'egress:',
      '  address: 127.0.0.1:0',
      '  allowHttp: true',
      `  providers: { anthropic: { origin: "${provider.url}" } }`,
      'telemetry:',
      `  endpoint: ${receiver.endpoint}`,
      '  serviceName: zero-code-agent',
      '  traces: { scheduledDelay: 50ms }',
      '  metrics: { otlp: false }',
      '  logs: { otlp: false }',
    ].join('\n'),
  );
});

afterAll(async () => {
  await provider?.close();
  await receiver?.stop();
});

describe('zero-code, end to end', () => {
  it('one trace from the client through the sidecar, the auto-instrumented agent and its LLM call; the agent’s own spans arrive through the relay, protected', async () => {
    provider.next({
      json: {
        id: 'msg_z',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-6',
        content: [{ type: 'text', text: 'forty-two' }],
        stop_reason: 'end_turn',
        usage: { input_tokens: 5, output_tokens: 2 },
      },
    });
    const port = await freePort();
    const proc = spawnCli(['run', '--config', config, '--agent-port', String(port), '--', process.execPath, AGENT], {
      ...CLEAN_RUN_ENV,
      ANTHROPIC_API_KEY: 'sk-ant-zero',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
    });
    try {
      const { listen } = await waitForStartup(proc);
      await expect.poll(() => proc.stdout().includes('"zeroCode"'), { timeout: 20_000 }).toBe(true);
      const res = await request(`${listen}/ask`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ answer: 'forty-two' });

      const started = proc
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, any>)
        .find((l) => l.event_type === 'agent_start')!;
      expect(started.env.find((e: string) => e.startsWith('NODE_OPTIONS='))).toContain('auto-instrumentations-node');

      // The provider was called with the egress span's traceparent.
      const sent = String(provider.seen.at(-1)!.headers.traceparent);
      const [, traceId = '', egressSpanId = ''] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(sent) ?? [];
      expect(traceId).not.toBe('');
      const inTrace = () => receiver.spans().filter((s) => s.traceId === traceId);
      const byId = (id: string) => inTrace().find((s) => s.spanId === id);
      // Every hop's span, exported by the sidecar or relayed from the agent.
      await expect.poll(() => inTrace().length, { timeout: 15_000 }).toBeGreaterThanOrEqual(5);
      await expect.poll(() => byId(egressSpanId), { timeout: 10_000 }).toBeDefined();
      const egress = byId(egressSpanId)!;
      expect(egress).toMatchObject({ kindName: 'CLIENT', name: 'chat claude-sonnet-4-6' });
      expect(egress.scope.name).toBe('agent-sidecar');
      // Its parent is the agent's own outgoing call (the SDK's fetch, instrumented), whose ancestors reach the sidecar's ingress.
      const chain: DecodedSpan[] = [];
      for (let s: DecodedSpan | undefined = egress; s !== undefined; s = s.parentSpanId === '' ? undefined : byId(s.parentSpanId)) chain.push(s);
      const agentSpans = chain.filter((s) => s.scope.name.startsWith('@opentelemetry/instrumentation'));
      expect(agentSpans.map((s) => s.kindName)).toEqual(['CLIENT', 'SERVER']);
      const root = chain.at(-1)!;
      expect(root.scope.name).toBe('agent-sidecar');
      expect(root.kindName).toBe('SERVER');
      expect(root.parentSpanId).toBe('');
      // The agent's server span carries its own attribute, masked on the way through the relay.
      const agentServer = agentSpans.find((s) => s.kindName === 'SERVER')!;
      expect(agentServer.attributes['customer.email']).toBe('[REDACTED:email]');
      expect(JSON.stringify(receiver.spans())).not.toContain('kim@example.com');
      expect(agentServer.resource['service.name']).toBe('zero-code-agent');
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });
});
