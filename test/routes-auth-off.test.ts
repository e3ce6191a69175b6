import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startServer, startSidecar } from './helpers.ts';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.ts';

// Auth off, the headline telemetry-only setup: routes still come from the policy (the built-in
// reference policy, or policy.file), for telemetry and for per-route rate limits.
let upstream: Awaited<ReturnType<typeof startServer>>;
const seen: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'routes-auth-off-'));

beforeAll(async () => {
  upstream = await startServer((req, res) => {
    seen.push(req.url ?? '');
    res.end('ok');
  });
});
afterAll(async () => {
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

const limited = (extra: Record<string, unknown> = {}) =>
  startSidecar({ upstream: { url: upstream.url }, rateLimit: { routes: [{ path: '/api/v1/agents/{agent_id}', requests: 2, per: '1m' }] }, ...extra });

/** Sends the path exactly as written (URL parsing would resolve `.` and `..` first). */
async function statusOf(url: string, method = 'GET'): Promise<number> {
  const { origin, hostname, port } = new URL(url);
  const req = http.request({ hostname, port, method, path: url.slice(origin.length), agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  res.resume();
  await once(res, 'end');
  return res.statusCode ?? 0;
}

describe('routes with auth off', () => {
  it('enforces a per-route rate limit of the built-in policy: the 3rd request to the template gets 429', async () => {
    const sidecar = await limited();
    try {
      const statuses = [];
      for (const id of ['a', 'b', 'c', 'd', 'e']) statuses.push(await statusOf(`${sidecar.url}/api/v1/agents/${id}`));
      expect(statuses).toEqual([200, 200, 429, 429, 429]);
      // Other routes and paths no route matches are not limited by it.
      expect(await statusOf(`${sidecar.url}/api/v1/agents`)).toBe(200);
      expect(await statusOf(`${sidecar.url}/somewhere/else`)).toBe(200);
    } finally {
      await sidecar.close();
    }
  });

  it('matches the normalized path, so a differently spelt path is the same route and the same limit', async () => {
    for (const odd of [
      '/api//v1/agents/x',
      '/api/v1/./agents/x',
      '/api/v1/agents/x/',
      '/api/v1/%61gents/x',
      '/api/v1/nothing/../agents/x',
      '//api/v1/agents/x',
    ]) {
      const sidecar = await limited();
      try {
        seen.length = 0;
        expect(await statusOf(`${sidecar.url}/api/v1/agents/a`)).toBe(200);
        // Forwarded as the client sent it: auth off changes nothing the agent receives.
        expect([await statusOf(`${sidecar.url}${odd}`), seen.at(-1)], odd).toEqual([200, odd]);
        expect(await statusOf(`${sidecar.url}${odd}`), odd).toBe(429);
        expect(await statusOf(`${sidecar.url}/api/v1/agents/b`), odd).toBe(429);
      } finally {
        await sidecar.close();
      }
    }
  });

  it('forwards a path that cannot be normalized as unmatched, charged to every route limit so that it cannot escape one', async () => {
    for (const odd of ['/api/v1/agents/a%2Fb', '/api/v1/agents/a;v=1', '/api/v1/agents/%zz', '/api/v1/agents/a%5Cb']) {
      const sidecar = await limited({ telemetry: { logs: { stdout: true, otlp: false }, traces: { enabled: false }, metrics: { otlp: false } } });
      try {
        seen.length = 0;
        expect([await statusOf(`${sidecar.url}${odd}`), seen.at(-1)], odd).toEqual([200, odd]);
        expect(await statusOf(`${sidecar.url}/api/v1/agents/a`), odd).toBe(200);
        expect(await statusOf(`${sidecar.url}${odd}`), odd).toBe(429);
        expect(await statusOf(`${sidecar.url}/api/v1/agents/a`), odd).toBe(429);
        const records = sidecar.logs.lines.filter((l) => l.event_type === 'access' && l.path === odd.split('?')[0]);
        expect(records.map((r) => r.route)).toEqual(['unmatched', 'unmatched']);
      } finally {
        await sidecar.close();
      }
    }
  });

  it('applies a route limit only to the methods it names', async () => {
    const sidecar = await startSidecar({
      upstream: { url: upstream.url },
      rateLimit: { routes: [{ path: '/api/v1/agents/{agent_id}', methods: ['DELETE'], requests: 1, per: '1m' }] },
    });
    try {
      expect([await statusOf(`${sidecar.url}/api/v1/agents/a`), await statusOf(`${sidecar.url}/api/v1/agents/a`)]).toEqual([200, 200]);
      expect([await statusOf(`${sidecar.url}/api/v1/agents/a`, 'DELETE'), await statusOf(`${sidecar.url}/api/v1//agents/b`, 'DELETE')]).toEqual([200, 429]);
      expect(await statusOf(`${sidecar.url}/api/v1/agents/a%2Fb`, 'GET')).toBe(200);
    } finally {
      await sidecar.close();
    }
  });

  describe('telemetry', () => {
    let receiver: OtlpReceiver;
    let sidecar: Awaited<ReturnType<typeof startSidecar>>;
    beforeAll(async () => {
      receiver = await startOtlpReceiver();
      const file = join(dir, 'policy.yaml');
      writeFileSync(file, 'roles: { reader: [read:doc] }\nroutes:\n  - path: /docs/{doc_id}\n    methods: { GET: read:doc }\n');
      sidecar = await startSidecar({
        upstream: { url: upstream.url },
        policy: { file },
        rateLimit: { routes: [{ path: '/docs/{doc_id}', requests: 2, per: '1m' }] },
        telemetry: {
          endpoint: receiver.endpoint,
          serviceName: 'open-agent',
          traces: { scheduledDelay: '50ms' },
          metrics: { otlp: false },
          logs: { otlp: false, stdout: false },
        },
      });
    });
    afterAll(async () => {
      await sidecar?.close();
      await receiver?.stop();
    });

    it('puts the policy file route on the span (http.route) and in the endpoint label, and limits it', async () => {
      const statuses = [];
      for (const path of ['/docs/1', '/docs//2', '/docs/3', '/other']) statuses.push(await statusOf(`${sidecar.url}${path}`));
      expect(statuses).toEqual([200, 200, 429, 200]);
      const spans = await receiver.waitFor(receiver.spans, (s) => s.filter((x) => x.kindName === 'SERVER').length >= 4);
      const servers = spans.filter((x) => x.kindName === 'SERVER');
      expect(servers.map((s) => [s.name, s.attributes['http.route'], s.attributes['http.response.status_code']])).toEqual([
        ['GET /docs/{doc_id}', '/docs/{doc_id}', 200],
        ['GET /docs/{doc_id}', '/docs/{doc_id}', 200],
        ['GET /docs/{doc_id}', '/docs/{doc_id}', 429],
        ['GET', undefined, 200],
      ]);
      const text = await (await request(`${sidecar.adminUrl}/metrics`)).body.text();
      expect(text).toMatch(/agent_requests_total\{[^}]*status="success",endpoint="\/docs\/\{doc_id\}"[^}]*\} 2\n/);
      expect(text).toMatch(/agent_requests_total\{[^}]*status="refused",endpoint="\/docs\/\{doc_id\}"[^}]*\} 1\n/);
      expect(text).toMatch(/agent_requests_total\{[^}]*endpoint="unmatched"[^}]*\} 1\n/);
      expect(text).toMatch(/agent_rate_limited_total\{[^}]*endpoint="\/docs\/\{doc_id\}"[^}]*\} 1\n/);
      expect(text).toMatch(/http_server_request_duration_seconds_count\{[^}]*http_response_status_code="200",http_route="\/docs\/\{doc_id\}"[^}]*\} 2\n/);
    });
  });
});
