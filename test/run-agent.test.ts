import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { CLEAN_RUN_ENV, freePort, spawnCli, waitForStartup } from './helpers.ts';
import { anthropicStream, openaiChatStream, startFakeProvider, type FakeProvider } from './fake-provider.ts';
import { startOtlpReceiver, type DecodedSpan, type OtlpReceiver } from './otlp-receiver.ts';
import { ensurePythonOtel, PYTHON_FIXTURES } from './python-otel.ts';

const AGENT = fileURLToPath(new URL('./fixtures/egress/agent.mjs', import.meta.url));
const RELAY_AGENT = fileURLToPath(new URL('./fixtures/relay-agent.mjs', import.meta.url));
const ZERO_CODE_AGENT = fileURLToPath(new URL('./fixtures/zero-code-agent.mjs', import.meta.url));

let provider: FakeProvider;
let receiver: OtlpReceiver;
let config: string;

function queueAnswers(): void {
  provider.next({
    json: {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-6',
      content: [{ type: 'text', text: 'hi' }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 10, output_tokens: 4, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
    },
  });
  provider.next({ events: anthropicStream({ model: 'claude-sonnet-4-6', input: 20, cacheRead: 500, cacheWrite: 0, outputs: [3, 6] }) });
  provider.next({ events: openaiChatStream({ model: 'gpt-5.4', text: ['Hel', 'lo'], usage: { prompt: 30, cached: 0, completion: 2 } }) });
}

/** The JSON lines of the wrapper's stdout (the sidecar's and the agent's, which inherits it). */
const lines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);

beforeAll(async () => {
  provider = await startFakeProvider();
  receiver = await startOtlpReceiver();
  config = join(os.tmpdir(), `run-agent-${process.pid}.yaml`);
  writeFileSync(
    config,
    [
      'listen: { address: 127.0.0.1:0 }',
      'admin: { address: 127.0.0.1:0 }',
      'egress:',
      '  address: 127.0.0.1:0',
      '  allowHttp: true',
      `  providers: { anthropic: { origin: "${provider.url}" }, openai: { origin: "${provider.url}" } }`,
      'telemetry:',
      `  endpoint: ${receiver.endpoint}`,
      '  serviceName: wrapped-agent',
      '  traces: { scheduledDelay: 50ms }',
      '  metrics: { exportInterval: 200ms }',
      '  logs: { otlp: false }',
    ].join('\n'),
  );
});

afterAll(async () => {
  await provider?.close();
  await receiver?.stop();
});

describe('agent-sidecar run -- <command>', () => {
  it('starts an agent using the official SDKs with its environment wired: its calls are measured, its port served, SIGTERM passed on', async () => {
    queueAnswers();
    const port = await freePort();
    const proc = spawnCli(['run', '--config', config, '--agent-port', String(port), '--', process.execPath, AGENT], {
      ...CLEAN_RUN_ENV,
      ANTHROPIC_API_KEY: 'sk-ant-api03-wrapper',
      OPENAI_API_KEY: 'sk-proj-wrapper',
      ANTHROPIC_BASE_URL: 'https://example.invalid',
    });
    const { listen } = await waitForStartup(proc);
    await expect.poll(() => lines(proc.stdout()).find((l) => l.agent !== undefined), { timeout: 15_000 }).toBeDefined();
    const agent = lines(proc.stdout()).find((l) => l.agent !== undefined)!.agent;
    expect(agent).toMatchObject({
      message: { input_tokens: 10, output_tokens: 4 },
      streamed: { input_tokens: 20, output_tokens: 6, cache_read_input_tokens: 500 },
      text: 'Hello',
      port,
    });

    // The provider saw the agent's own keys (this SDK sends its API key as a bearer token), and the agent is reached through the sidecar on the port it was given.
    expect(provider.seen.slice(-3).map((s) => [s.path, s.headers['x-api-key'] ?? s.headers.authorization])).toEqual([
      ['/v1/messages', 'Bearer sk-ant-api03-wrapper'],
      ['/v1/messages', 'Bearer sk-ant-api03-wrapper'],
      ['/v1/chat/completions', 'Bearer sk-proj-wrapper'],
    ]);
    const res = await request(`${listen}/`);
    expect(await res.body.text()).toBe('agent here');

    // The sidecar's lines are written in batches: the last call's may trail the agent's line.
    await expect.poll(() => lines(proc.stdout()).filter((l) => l.event_type === 'llm_call').length).toBe(3);
    const calls = lines(proc.stdout()).filter((l) => l.event_type === 'llm_call');
    expect(calls.map((c) => [c.provider, c.model, c.output_tokens, c.outcome])).toEqual([
      ['anthropic', 'claude-sonnet-4-6', 4, 'complete'],
      ['anthropic', 'claude-sonnet-4-6', 6, 'complete'],
      ['openai', 'gpt-5.4', 2, 'complete'],
    ]);
    const started = lines(proc.stdout()).find((l) => l.event_type === 'agent_start')!;
    // The agent's own SDK exports to the relay (see the relay test below), not to the collector.
    expect(started.env).toEqual(expect.arrayContaining([`PORT=${port}`, 'OTEL_SERVICE_NAME=wrapped-agent', 'OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf']));
    expect(started.env.find((e: string) => e.startsWith('OTEL_EXPORTER_OTLP_ENDPOINT='))).toMatch(/^OTEL_EXPORTER_OTLP_ENDPOINT=http:\/\/127\.0\.0\.1:\d+$/);
    expect(started.env.find((e: string) => e.startsWith('ANTHROPIC_BASE_URL='))).toMatch(
      /^ANTHROPIC_BASE_URL=http:\/\/127\.0\.0\.1:\d+\/anthropic \(was https:\/\/example\.invalid\)$/,
    );

    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(lines(proc.stdout()).some((l) => l.event_type === 'shutdown' && l.message === 'stopped')).toBe(true);
    // Flushed on the way out: the collector has the calls' tokens.
    const points = receiver.metrics().filter((m) => m.name === 'llm_tokens' && m.attributes.token_type === 'output');
    expect(points.some((p) => p.attributes.model === 'gpt-5.4' && p.value === 2 && p.resource['service.name'] === 'wrapped-agent')).toBe(true);
  });

  it("points the agent's own OpenTelemetry SDK at the relay: its spans reach the collector protected, and the collector's headers stay with the sidecar", async () => {
    const proc = spawnCli(['run', '--config', config, '--', process.execPath, RELAY_AGENT], {
      ...CLEAN_RUN_ENV,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-key=secret-123',
      OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=wrapped-pod',
    });
    expect(await proc.exited).toBe(0);
    const agent = lines(proc.stdout()).find((l) => l.relayAgent !== undefined)!.relayAgent;
    expect(agent.status).toBe(200);
    expect(agent.protocol).toBe('http/protobuf');
    expect(agent.headers).toBeNull();
    expect(agent.endpoint).not.toBe(receiver.endpoint);
    const started = lines(proc.stdout()).find((l) => l.event_type === 'agent_start')!;
    expect(started.env).toContain("OTEL_EXPORTER_OTLP_HEADERS removed (the relay sends the collector's headers)");
    expect(JSON.stringify(started)).not.toContain('secret-123');
    // Flushed on the way out, as the sidecar's own spans are.
    const [span] = (await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.scope.name === 'relay-agent'))).filter(
      (x) => x.scope.name === 'relay-agent',
    );
    expect(span!.name).toBe('answer [REDACTED:email]');
    expect(span!.attributes).toMatchObject({ 'customer.email': '[REDACTED:email]', step: 'answer' });
    expect(span!.resource).toMatchObject({ 'service.name': 'wrapped-agent', 'k8s.pod.name': 'wrapped-pod' });
  });

  it("exits with the agent's status when it exits on its own, and 127 when the command does not exist", async () => {
    queueAnswers();
    const proc = spawnCli(['run', '--config', config, '--agent-port', String(await freePort()), '--', process.execPath, AGENT, 'exit'], {
      ...CLEAN_RUN_ENV,
      ANTHROPIC_API_KEY: 'k',
      OPENAI_API_KEY: 'k',
    });
    expect(await proc.exited).toBe(7);
    expect(lines(proc.stdout()).find((l) => l.event_type === 'agent_exit')).toMatchObject({ exit_code: 7 });

    const missing = spawnCli(['run', '--config', config, '--', 'no-such-agent-binary'], CLEAN_RUN_ENV);
    expect(await missing.exited).toBe(127);
  });

  it('kills an agent that goes on after SIGTERM once shutdown.gracePeriod has passed, so that run always ends', async () => {
    const stubborn = join(os.tmpdir(), `run-agent-stubborn-${process.pid}.yaml`);
    writeFileSync(
      stubborn,
      'listen: { address: 127.0.0.1:0 }\nadmin: { address: 127.0.0.1:0 }\nshutdown: { gracePeriod: 1s }\ntelemetry: { enabled: false }\n',
    );
    const agent =
      "process.on('SIGTERM', () => console.log(JSON.stringify({ stubborn: 'SIGTERM ignored' }))); console.log(JSON.stringify({ stubborn: 'up' })); setInterval(() => {}, 1000);";
    const proc = spawnCli(['run', '--config', stubborn, '--egress', '127.0.0.1:0', '--', process.execPath, '-e', agent], CLEAN_RUN_ENV);
    await expect.poll(() => lines(proc.stdout()).some((l) => l.stubborn === 'up'), { timeout: 15_000 }).toBe(true);
    const sent = Date.now();
    proc.child.kill('SIGTERM');
    // 128 + SIGKILL: the agent's status, as run reports it.
    expect(await proc.exited).toBe(137);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(900);
    expect(lines(proc.stdout()).some((l) => l.stubborn === 'SIGTERM ignored')).toBe(true);
    expect(lines(proc.stdout()).find((l) => l.event_type === 'agent_kill')).toMatchObject({ signal: 'SIGKILL', grace_period_ms: 1000 });
  });

  it('refuses a bad --agent-port before starting anything', async () => {
    const proc = spawnCli(['run', '--config', config, '--agent-port', '70000', '--', process.execPath, AGENT], CLEAN_RUN_ENV);
    expect(await proc.exited).toBe(2);
    expect(proc.stderr()).toContain('[SIDECAR_USAGE_INVALID]');
  });
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
    expect(agentServer.resource['service.name']).toBe('wrapped-agent');
    return lines(proc.stdout()).find((l) => l.event_type === 'agent_start')!;
  } finally {
    proc.child.kill('SIGTERM');
    await proc.exited;
  }
}

// Zero-code, end to end, with real parts: `run --` starts an agent under OpenTelemetry's
// zero-code instrumentation (a Node.js HTTP server using the official Anthropic SDK under
// the auto-instrumentations-node hook; a Python Flask server using requests under
// opentelemetry-instrument, installed from PyPI); one request from a client makes one trace
// across the sidecar's ingress, the agent and its LLM call through the egress listener, and
// the agent's own spans reach the collector through the relay, protected.
describe('zero-code, end to end', () => {
  it('a Node.js agent under the auto-instrumentation hook: one trace from the client through the sidecar, the agent and its LLM call, the agent’s spans relayed and protected', async () => {
    const started = await oneTrace([process.execPath, ZERO_CODE_AGENT], {}, '"zeroCode"', /^@opentelemetry\/instrumentation-/);
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
