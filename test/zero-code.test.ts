import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { CLEAN_RUN_ENV, freePort, spawnCli, waitForStartup } from './helpers.ts';
import { startFakeProvider, type FakeProvider } from './fake-provider.ts';
import { startOtlpReceiver, type DecodedSpan, type OtlpReceiver } from './otlp-receiver.ts';
import { ensurePythonOtel, PYTHON_FIXTURES } from './python-otel.ts';

// Zero-code, end to end, with real parts: `run --` starts an agent under OpenTelemetry's
// zero-code instrumentation (a Node.js HTTP server using the official Anthropic SDK under
// the auto-instrumentations-node hook; a Python Flask server using requests under
// opentelemetry-instrument, installed from PyPI); one request from a client makes one trace
// across the sidecar's ingress, the agent and its LLM call through the egress listener, and
// the agent's own spans reach the collector through the relay, protected.

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

/** The answer the fake provider gives each agent's one call. */
function queueAnswer(): void {
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
}

const jsonLines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);

/**
 * Starts `command` under `run --`, asks it once through the sidecar, and checks the one trace:
 * the provider got the egress CLIENT span's traceparent; that span's ancestors are the agent's
 * own spans (its HTTP client's CLIENT span first, its server's SERVER span last), relayed, and
 * above them the sidecar's, up to its SERVER span, the root. Returns the agent's start line.
 */
async function oneTrace(command: string[], env: NodeJS.ProcessEnv, ready: string, agentScope: RegExp): Promise<Record<string, any>> {
  queueAnswer();
  const port = await freePort();
  const proc = spawnCli(['run', '--config', config, '--agent-port', String(port), '--', ...command], {
    ...CLEAN_RUN_ENV,
    ANTHROPIC_API_KEY: 'sk-ant-zero',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
    ...env,
  });
  try {
    const { listen } = await waitForStartup(proc);
    await expect.poll(() => proc.stdout().includes(ready), { timeout: 30_000 }).toBe(true);
    const res = await request(`${listen}/ask`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ answer: 'forty-two' });

    const sent = String(provider.seen.at(-1)!.headers.traceparent);
    const [, traceId = '', egressSpanId = ''] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(sent) ?? [];
    expect(traceId).not.toBe('');
    const inTrace = () => receiver.spans().filter((s) => s.traceId === traceId);
    const byId = (id: string) => inTrace().find((s) => s.spanId === id);
    const chainFrom = (s: DecodedSpan | undefined): DecodedSpan[] => {
      const chain: DecodedSpan[] = [];
      for (; s !== undefined; s = s.parentSpanId === '' ? undefined : byId(s.parentSpanId)) chain.push(s);
      return chain;
    };
    // Whole once the chain reaches a root: the agent's spans come through the relay after its own batch delay.
    await expect.poll(() => chainFrom(byId(egressSpanId)).at(-1)?.parentSpanId, { timeout: 20_000 }).toBe('');
    const chain = chainFrom(byId(egressSpanId));
    const egress = chain[0]!;
    expect(egress).toMatchObject({ kindName: 'CLIENT', name: 'chat claude-sonnet-4-6' });
    expect(egress.scope.name).toBe('agent-sidecar');
    const agentSpans = chain.filter((s) => agentScope.test(s.scope.name));
    expect(agentSpans.length).toBeGreaterThanOrEqual(2);
    expect(chain[1]).toBe(agentSpans[0]);
    expect(agentSpans[0]!.kindName).toBe('CLIENT');
    const agentServer = agentSpans.at(-1)!;
    expect(agentServer.kindName).toBe('SERVER');
    const root = chain.at(-1)!;
    expect(root).toMatchObject({ kindName: 'SERVER', parentSpanId: '' });
    expect(root.scope.name).toBe('agent-sidecar');
    // The agent's own attribute, masked on the way through the relay; its resource is the service run named.
    expect(agentServer.attributes['customer.email']).toBe('[REDACTED:email]');
    expect(JSON.stringify(receiver.spans())).not.toMatch(/(kim|lee)@example\.com/);
    expect(agentServer.resource['service.name']).toBe('zero-code-agent');
    return jsonLines(proc.stdout()).find((l) => l.event_type === 'agent_start')!;
  } finally {
    proc.child.kill('SIGTERM');
    await proc.exited;
  }
}

describe('zero-code, end to end', () => {
  it('a Node.js agent under the auto-instrumentation hook: one trace from the client through the sidecar, the agent and its LLM call, the agent’s spans relayed and protected', async () => {
    const started = await oneTrace([process.execPath, AGENT], {}, '"zeroCode"', /^@opentelemetry\/instrumentation-/);
    expect(started.env.find((e: string) => e.startsWith('NODE_OPTIONS='))).toContain('auto-instrumentations-node');
  });

  it('a Python agent (Flask, requests) under opentelemetry-instrument from PyPI: the same one trace', { timeout: 600_000 }, async () => {
    const bin = ensurePythonOtel();
    const started = await oneTrace(
      ['python3', join(PYTHON_FIXTURES, 'agent.py')],
      { PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` },
      '"pythonAgent"',
      /^opentelemetry\.instrumentation\./,
    );
    expect(started.command).toBe(join(bin, 'opentelemetry-instrument'));
    expect(started.env).toContain(`started under ${join(bin, 'opentelemetry-instrument')}`);
  });
});
