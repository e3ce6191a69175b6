import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver } from './otlp-receiver.ts';

const DEMO = fileURLToPath(new URL('../src/demo/main.ts', import.meta.url));
// No collector named, whatever the environment of the test run says.
const NO_COLLECTOR = {
  OTEL_EXPORTER_OTLP_ENDPOINT: '',
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: '',
  OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: '',
};
const DEMO_ENV = { SIDECAR_LISTEN: '127.0.0.1:0', SIDECAR_ADMIN: '127.0.0.1:0', SIDECAR_EGRESS: '127.0.0.1:0', SIDECAR_LOG_LEVEL: 'warn' };

describe('npm run demo', () => {
  const child = spawn(process.execPath, [DEMO], {
    env: { ...process.env, ...NO_COLLECTOR, ...DEMO_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));

  afterAll(async () => {
    if (child.exitCode === null) {
      child.kill('SIGINT');
      await once(child, 'exit');
    }
  });

  it('puts the demo agent behind the sidecar with JWT and RBAC on, and prints tokens that work', async () => {
    const deadline = Date.now() + 10_000;
    while (!out.includes('Ctrl-C') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const base = /behind the sidecar \((http:\/\/127\.0\.0\.1:\d+)\)/.exec(out)?.[1];
    expect(base, out).toBeDefined();

    expect(out).toMatch(/analyst GET \/api\/v1\/agents -> 200; user GET \/api\/v1\/agents -> 403 SIDECAR_FORBIDDEN/);
    const token = (role: string) => new RegExp(`^\\s+${role}\\s+(eyJ\\S+)$`, 'm').exec(out)?.[1];
    const anonymous = await request(`${base}/api/v1/agents`);
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();

    const list = await request(`${base}/api/v1/agents`, { headers: { authorization: `Bearer ${token('analyst')}` } });
    expect(list.statusCode).toBe(200);
    expect(((await list.body.json()) as { agents: unknown[] }).agents.length).toBeGreaterThan(0);

    const chat = await request(`${base}/api/v1/chat`, {
      method: 'POST',
      body: '{"message":"hello"}',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token('user')}` },
    });
    expect(chat.headers['content-type']).toBe('text/event-stream');
    const text = await chat.body.text();
    expect(text).toContain('event: token');
    expect(text).toContain('event: done');

    // Where telemetry goes, in one line; with no collector named, nothing to warn about,
    // not even when the shutdown flushes what the requests above recorded.
    expect(out).toMatch(
      /^Telemetry: \/metrics on the admin listener \(http:\/\/127\.0\.0\.1:\d+\/metrics\); OTLP export off \(set OTEL_EXPORTER_OTLP_ENDPOINT/m,
    );
    child.kill('SIGINT');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    const warnings = out.split('\n').filter((l) => /^\{"level":"(warn|error)"/.test(l) && !l.includes('"logger":"agent-sidecar.access"'));
    expect(warnings).toEqual([]);
  });

  it('exports OTLP to the collector OTEL_EXPORTER_OTLP_ENDPOINT names, and says so', async () => {
    const receiver = await startOtlpReceiver();
    const demo = spawn(process.execPath, [DEMO], {
      env: { ...process.env, ...NO_COLLECTOR, ...DEMO_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    demo.stdout.on('data', (d: Buffer) => (text += d.toString()));
    demo.stderr.on('data', (d: Buffer) => (text += d.toString()));
    try {
      await expect.poll(() => text.includes('Ctrl-C'), { timeout: 10_000 }).toBe(true);
      expect(text).toContain(`OTLP export to ${receiver.endpoint} (traces, metrics, logs`);
      demo.kill('SIGINT');
      await once(demo, 'exit');
      // The demo's own two requests at start, flushed at shutdown.
      expect(receiver.spans().some((s) => s.name.startsWith('GET'))).toBe(true);
      expect(receiver.logs().length).toBeGreaterThan(0);
    } finally {
      if (demo.exitCode === null) demo.kill('SIGKILL');
      await receiver.stop();
    }
  });
});
