import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { issueToken } from '../src/auth/issuer.ts';
import { spawnCli, startServer, startSidecar, waitForStartup } from './helpers.ts';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.ts';

const SECRET = 'protect-telemetry-secret-0123456789abcdef';
// Values the default rules protect, seeded into every place a request can put them.
const SEEDED = {
  pathEmail: 'bob@example.com',
  subject: 'carol@example.com',
  agentEmail: 'ops+alerts@example.com',
  openaiKey: `sk-proj-${'Zq9'.repeat(12)}`,
  awsKey: 'AKIAIOSFODNN7EXAMPLE',
};

let receiver: OtlpReceiver;
let upstream: Awaited<ReturnType<typeof startServer>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;

/** Everything a value could hide in, as one string: bigints and bytes included. */
function dump(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
}

function expectNoSeededValue(text: string): void {
  for (const value of Object.values(SEEDED)) expect(text).not.toContain(value);
}

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  upstream = await startServer((req, res) => {
    res.statusCode = req.url?.includes('fail') ? 500 : 200;
    res.end('ok');
  });
  sidecar = await startSidecar({
    upstream: { url: upstream.url, circuitBreaker: { enabled: false } },
    auth: { jwt: { secret: SECRET, algorithms: ['HS256'] } },
    telemetry: {
      endpoint: receiver.endpoint,
      exportTimeout: '1s',
      traces: { scheduledDelay: '50ms', recordUser: true },
      metrics: { exportInterval: '200ms' },
      // Both sinks: the records are exported and written on stdout, each protected.
      logs: { scheduledDelay: '50ms', stdout: true },
    },
  });
  const token = await issueToken(SECRET, { sub: SEEDED.subject, roles: ['analyst'], sid: SEEDED.agentEmail, type: 'access' }, 60_000);
  const headers = {
    authorization: `Bearer ${token}`,
    'user-agent': `bot/1.0 (+${SEEDED.agentEmail}; key ${SEEDED.openaiKey})`,
    'x-session-id': SEEDED.agentEmail,
  };
  for (const path of [
    `/api/v1/agents/${SEEDED.pathEmail}`,
    `/api/v1/agents/${SEEDED.awsKey}?q=${SEEDED.pathEmail}`,
    `/api/v1/agents/fail-${SEEDED.pathEmail}`,
    `/api/v1/metrics/${SEEDED.pathEmail}`,
  ]) {
    const res = await request(`${sidecar.url}${path}`, { headers });
    await res.body.text();
  }
});

afterAll(async () => {
  await sidecar?.close();
  await upstream?.close();
  await receiver?.stop();
});

describe('telemetry protection', () => {
  it('exports spans whose attributes carry no protected value, redacted where they were', async () => {
    const spans = await receiver.waitFor(receiver.spans, (s) => s.filter((x) => x.kindName === 'SERVER').length >= 4);
    const server = spans.find((s) => s.kindName === 'SERVER' && s.attributes['http.response.status_code'] === 200)!;
    expect(server.attributes['url.path']).toBe('/api/v1/agents/[REDACTED:email]');
    expect(server.attributes['enduser.id']).toBe('[REDACTED:email]');
    expect(server.attributes['user_agent.original']).toBe('bot/1.0 (+[REDACTED:email]; key [REDACTED:openai_key])');
    expect(spans.some((s) => s.attributes['url.full'] === `${upstream.url}/api/v1/agents/[REDACTED:aws_access_key]`)).toBe(true);
    expectNoSeededValue(dump(spans));
  });

  it('exports log records (access and audit) and metrics with no protected value', async () => {
    const logs = await receiver.waitFor(receiver.logs, (l) => l.filter((r) => r.attributes.event_type === 'access').length >= 4);
    const access = logs.find((r) => r.attributes.event_type === 'access' && r.attributes.status_code === 200)!;
    expect(access.attributes.path).toBe('/api/v1/agents/[REDACTED:email]');
    expect(access.attributes.user_id).toBe('[REDACTED:email]');
    expect(access.body).toBe('GET /api/v1/agents/[REDACTED:email] 200');
    expect(logs.some((r) => r.attributes.event_type === 'authentication' && r.attributes.user_id === '[REDACTED:email]')).toBe(true);
    expectNoSeededValue(dump(logs));
    const metrics = await receiver.waitFor(receiver.metrics, (m) => m.some((x) => x.name === 'agent_requests'));
    expectNoSeededValue(dump(metrics));
  });

  it('writes JSON lines on stdout with no protected value', () => {
    const access = sidecar.logs.lines.filter((l) => l.event_type === 'access');
    expect(access.length).toBeGreaterThanOrEqual(4);
    expect(access.map((l) => l.message)).toContain('GET /api/v1/agents/[REDACTED:email] 200');
    expect(access.find((l) => l.status_code === 200)?.session_id).toBe('[REDACTED:email]');
    expectNoSeededValue(dump(sidecar.logs.lines));
  });
});

describe('stdout of the real process', () => {
  it('never prints a protected value, and prints it when telemetry protection is off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'protect-stdout-'));
    const run = async (enabled: boolean) => {
      const config = join(dir, `c-${enabled}.yaml`);
      // Telemetry on for the access records on stdout, with nothing exported.
      writeFileSync(
        config,
        [
          'listen: { address: 127.0.0.1:0 }',
          'admin: { address: 127.0.0.1:0 }',
          `upstream: { url: ${upstream.url} }`,
          'telemetry: { enabled: true, traces: { enabled: false }, metrics: { otlp: false, prometheus: false }, logs: { otlp: false, stdout: true } }',
          `protection: { telemetry: { enabled: ${enabled} } }`,
        ].join('\n'),
      );
      const proc = spawnCli(['run', '--config', config], {
        SIDECAR_CONFIG: '',
        SIDECAR_LISTEN: '',
        SIDECAR_UPSTREAM: '',
        SIDECAR_ADMIN: '',
        OTEL_SDK_DISABLED: '',
        OTEL_EXPORTER_OTLP_ENDPOINT: '',
      });
      const { listen } = await waitForStartup(proc);
      const res = await request(`${listen}/users/${SEEDED.pathEmail}`, { headers: { 'user-agent': `cli ${SEEDED.awsKey}` } });
      await res.body.text();
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
      return proc.stdout();
    };
    const protectedOut = await run(true);
    expect(protectedOut).toContain('"path":"/users/[REDACTED:email]"');
    expectNoSeededValue(protectedOut);
    // The same run with protection off shows the test would see a leak.
    expect(await run(false)).toContain(SEEDED.pathEmail);
  });
});
