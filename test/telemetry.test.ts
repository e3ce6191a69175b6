import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import { issueToken } from '../src/auth/issuer.ts';
import { createHistograms, HistogramProducer } from '../src/telemetry/instruments.ts';
import { startServer, startSidecar } from './helpers.ts';
import { startOtlpReceiver, type DecodedMetric, type OtlpReceiver } from './otlp-receiver.ts';

const SECRET = 'telemetry-test-secret-0123456789abcdef';
const CLIENT_TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

let receiver: OtlpReceiver;
let upstream: Awaited<ReturnType<typeof startServer>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
const seen: Array<{ path: string; traceparent: string | undefined; baggage: string | undefined }> = [];
let analyst: string;
let user: string;

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await request(`${sidecar.url}${path}`, { headers });
  await res.body.text();
  return { status: res.statusCode, requestId: String(res.headers['x-request-id']) };
}

/** The latest cumulative point of a metric with these attributes. */
function latest(points: DecodedMetric[], name: string, attrs: Record<string, unknown>): DecodedMetric | undefined {
  return points.filter((p) => p.name === name && Object.entries(attrs).every(([k, v]) => p.attributes[k] === v)).at(-1);
}

async function scrape(): Promise<string> {
  const res = await request(`${sidecar.adminUrl}/metrics`);
  expect(res.statusCode).toBe(200);
  return res.body.text();
}

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  upstream = await startServer((req, res) => {
    seen.push({ path: req.url ?? '', traceparent: req.headers.traceparent as string | undefined, baggage: req.headers.baggage as string | undefined });
    if (req.url?.startsWith('/api/v1/agents/broken')) {
      req.socket.destroy();
      return;
    }
    if (req.url?.startsWith('/api/v1/agents/missing')) {
      res.statusCode = 404;
      res.end('no such agent');
      return;
    }
    res.end('ok');
  });
  sidecar = await startSidecar({
    upstream: { url: upstream.url, circuitBreaker: { enabled: false } },
    auth: { jwt: { secret: SECRET, algorithms: ['HS256'] } },
    rateLimit: { routes: [{ path: '/api/v1/conversations', requests: 1, per: '1m' }] },
    telemetry: {
      endpoint: receiver.endpoint,
      serviceName: 'triage-agent',
      environment: 'test',
      exportTimeout: '1s',
      errorLogInterval: '1h',
      // Loopback clients are not trusted for trace context here: their traceparent must be dropped.
      traces: { scheduledDelay: '50ms', trustIncoming: ['10.0.0.0/8'] },
      metrics: { exportInterval: '200ms' },
      logs: { scheduledDelay: '50ms' },
    },
  });
  analyst = await issueToken(SECRET, { sub: 'u-analyst', roles: ['analyst'], sid: 'session-1', type: 'access' }, 60_000);
  user = await issueToken(SECRET, { sub: 'u-user', roles: ['user'], type: 'access' }, 60_000);
});

afterAll(async () => {
  await sidecar?.close();
  await upstream?.close();
  await receiver?.stop();
});

describe('telemetry over OTLP', () => {
  const ids: Record<string, string> = {};

  it('answers every request as without telemetry', async () => {
    const auth = { authorization: `Bearer ${analyst}` };
    const ok = await get('/api/v1/agents?q=secret', { ...auth, traceparent: CLIENT_TRACEPARENT, baggage: 'k=v', 'x-session-id': 'web-1' });
    expect(ok.status).toBe(200);
    ids.ok = ok.requestId;
    expect((await get('/api/v1/agents', { authorization: `Bearer ${user}` })).status).toBe(403);
    expect((await get('/api/v1/agents')).status).toBe(401);
    expect((await get('/api/v1/conversations', auth)).status).toBe(200);
    expect((await get('/api/v1/conversations', auth)).status).toBe(429);
    const broken = await get('/api/v1/agents/broken', auth);
    expect(broken.status).toBe(502);
    ids.broken = broken.requestId;
    // The agent's own 4xx: an answer, not a refusal by the sidecar.
    expect((await get('/api/v1/agents/missing', auth)).status).toBe(404);
  });

  it('exports a SERVER span and its CLIENT child, whose id the upstream received as traceparent', async () => {
    const spans = await receiver.waitFor(receiver.spans, (s) =>
      s.some((x) => x.kindName === 'SERVER' && x.attributes['http.route'] === '/api/v1/agents' && x.attributes['http.response.status_code'] === 200),
    );
    const server = spans.find(
      (x) => x.kindName === 'SERVER' && x.attributes['http.response.status_code'] === 200 && x.attributes['http.route'] === '/api/v1/agents',
    )!;
    const client = spans.find((x) => x.kindName === 'CLIENT' && x.parentSpanId === server.spanId)!;
    expect(client).toBeDefined();
    expect(client.traceId).toBe(server.traceId);
    // An untrusted caller's trace context is neither continued nor forwarded.
    expect(server.traceId).not.toBe(CLIENT_TRACEPARENT.split('-')[1]);
    expect(server.parentSpanId).toBe('');
    const hop = seen.find((s) => s.path.startsWith('/api/v1/agents?q='))!;
    expect(hop.traceparent).toBe(`00-${server.traceId}-${client.spanId}-01`);
    expect(hop.baggage).toBeUndefined();
    expect(server.name).toBe('GET /api/v1/agents');
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/api/v1/agents',
      'url.scheme': 'http',
      'client.address': '127.0.0.1',
    });
    expect(server.attributes['enduser.id']).toBeUndefined();
    expect(server.events.map((e) => e.name)).toEqual(expect.arrayContaining(['authenticated', 'authorization allowed']));
    expect(server.resource).toMatchObject({ 'service.name': 'triage-agent', 'deployment.environment.name': 'test' });
    expect(server.resource['service.instance.id']).toBeTypeOf('string');
  });

  it('marks failures with error.type and error status', async () => {
    const spans = await receiver.waitFor(receiver.spans, (s) => s.some((x) => x.kindName === 'SERVER' && x.attributes['http.response.status_code'] === 502));
    const server = spans.find((x) => x.kindName === 'SERVER' && x.attributes['http.response.status_code'] === 502)!;
    expect(server.status.codeName).toBe('ERROR');
    expect(server.attributes['error.type']).toBe('SIDECAR_UPSTREAM_UNAVAILABLE');
    expect(server.attributes['http.route']).toBe('/api/v1/agents/{agent_id}');
    const denied = spans.find((x) => x.kindName === 'SERVER' && x.attributes['http.response.status_code'] === 403)!;
    // A refusal is no failed request (HTTP semconv: 4xx is no server error); its code rides along.
    expect(denied.attributes['error.type']).toBeUndefined();
    expect(denied.attributes['agent_sidecar.refusal']).toBe('SIDECAR_FORBIDDEN');
    expect(denied.status.codeName).not.toBe('ERROR');
  });

  it('exports the reference metrics with bounded attributes', async () => {
    const points = await receiver.waitFor(receiver.metrics, (m) => latest(m, 'agent_errors', { error_type: 'SIDECAR_UPSTREAM_UNAVAILABLE' }) !== undefined);
    const base = { agent_type: 'triage-agent' };
    // Refusals (403, 401, 429) are the sidecar working as configured: neither successes nor
    // errors (HighErrorRate must not page on a client with a bad token). Only the 502 is an
    // error; the agent's own 404 is a success.
    expect(latest(points, 'agent_requests', { ...base, status: 'success', endpoint: '/api/v1/agents' })?.value).toBe(1);
    expect(latest(points, 'agent_requests', { ...base, status: 'refused', endpoint: '/api/v1/agents' })?.value).toBe(2);
    expect(latest(points, 'agent_requests', { ...base, status: 'error', endpoint: '/api/v1/agents' })).toBeUndefined();
    expect(latest(points, 'agent_requests', { ...base, status: 'success', endpoint: '/api/v1/conversations' })?.value).toBe(1);
    expect(latest(points, 'agent_requests', { ...base, status: 'refused', endpoint: '/api/v1/conversations' })?.value).toBe(1);
    expect(latest(points, 'agent_requests', { ...base, status: 'error', endpoint: '/api/v1/agents/{agent_id}' })?.value).toBe(1);
    expect(latest(points, 'agent_requests', { ...base, status: 'success', endpoint: '/api/v1/agents/{agent_id}' })?.value).toBe(1);
    expect(latest(points, 'agent_requests', { ...base, status: 'refused', endpoint: '/api/v1/agents/{agent_id}' })).toBeUndefined();
    expect(latest(points, 'agent_errors', { ...base, error_type: 'SIDECAR_UPSTREAM_UNAVAILABLE' })?.value).toBe(1);
    for (const code of ['SIDECAR_FORBIDDEN', 'SIDECAR_CREDENTIALS_MISSING', 'SIDECAR_RATE_LIMITED']) {
      expect(latest(points, 'agent_errors', { ...base, error_type: code }), code).toBeUndefined();
    }
    const duration = latest(points, 'agent_request_duration_seconds', { ...base, endpoint: '/api/v1/agents' })!;
    expect(duration.explicitBounds).toEqual([0.1, 0.5, 1, 2, 5, 10, 30]);
    expect(duration.count).toBe(3);
    const http = latest(points, 'http.server.request.duration', { 'http.route': '/api/v1/agents', 'http.response.status_code': 200 })!;
    expect(http.unit).toBe('s');
    expect(latest(points, 'agent_rate_limited', { endpoint: '/api/v1/conversations' })?.value).toBe(1);
    expect(latest(points, 'agent_auth_attempts', { outcome: 'failure', reason: 'SIDECAR_CREDENTIALS_MISSING' })?.value).toBe(1);
    expect(latest(points, 'agent_authorization_decisions', { decision: 'denied', reason: 'SIDECAR_FORBIDDEN' })?.value).toBe(1);
    expect(latest(points, 'agent_revocation_checks', { result: 'valid' })?.value).toBeGreaterThanOrEqual(4);
    expect(latest(points, 'agent_active_sessions', base)?.value).toBeGreaterThanOrEqual(1);
    expect(latest(points, 'agent_system_info', { environment: 'test' })?.value).toBe(1);
    expect(latest(points, 'http.client.request.duration', { 'http.response.status_code': 200 })).toBeDefined();
    // The analyst's token was verified once, then served from the token cache.
    expect(latest(points, 'cache_misses', { cache_type: 'token' })?.value).toBeGreaterThanOrEqual(2);
    expect(latest(points, 'cache_hits', { cache_type: 'token' })?.value).toBeGreaterThanOrEqual(3);
    // Cardinality: no raw paths, queries or user ids anywhere.
    const values = points.flatMap((p) => Object.values(p.attributes).map(String));
    expect(values.filter((v) => v.includes('?') || v.includes('broken') || v.startsWith('u-'))).toEqual([]);
  });

  it('exports one access record per request and every audit event as log records', async () => {
    const logs = await receiver.waitFor(receiver.logs, (l) => l.some((r) => r.attributes.request_id === ids.broken && r.attributes.event_type === 'access'));
    const ok = logs.find((r) => r.attributes.request_id === ids.ok && r.attributes.event_type === 'access')!;
    expect(ok.attributes).toMatchObject({
      user_id: 'u-analyst',
      session_id: 'web-1',
      agent_type: 'triage-agent',
      method: 'GET',
      route: '/api/v1/agents',
      path: '/api/v1/agents',
      status_code: 200,
      bytes_out: 2,
    });
    expect(ok.attributes.duration_ms).toBeTypeOf('number');
    expect(ok.attributes.upstream_duration_ms).toBeTypeOf('number');
    expect(ok.severityText).toBe('INFO');
    expect(ok.traceId).toBe(ok.attributes.trace_id);
    expect(ok.spanId).toBe(ok.attributes.span_id);
    const broken = logs.find((r) => r.attributes.request_id === ids.broken && r.attributes.event_type === 'access')!;
    expect(broken.severityText).toBe('ERROR');
    expect(broken.attributes.error_type).toBe('SIDECAR_UPSTREAM_UNAVAILABLE');
    const denied = logs.find((r) => r.attributes.event_type === 'access' && r.attributes.status_code === 403)!;
    expect(denied.severityText).toBe('WARN');
    expect(logs.filter((r) => r.attributes.event_type === 'authentication').length).toBeGreaterThanOrEqual(5);
    expect(logs.some((r) => r.attributes.event_type === 'authorization' && r.attributes.allowed === false)).toBe(true);
    // One sink per record: exported, so no JSON line on stdout (logs.stdout: true would add it).
    expect(sidecar.logs.lines.filter((l) => l.event_type === 'access')).toEqual([]);
  });

  it('serves the reference names on the admin /metrics', async () => {
    const text = await scrape();
    for (const name of [
      'agent_requests_total{',
      'agent_request_duration_seconds_bucket{',
      'agent_errors_total{',
      'agent_active_sessions{',
      'agent_system_info{',
      'http_server_request_duration_seconds_bucket{',
      'http_client_request_duration_seconds_bucket{',
      'http_server_active_requests{',
      'agent_auth_attempts_total{',
      'agent_rate_limited_total{',
      'cache_hits_total{cache_type="token"',
    ]) {
      expect(text, name).toContain(name);
    }
    // 200 / 403 + 401 on /api/v1/agents, 200 / 429 on /api/v1/conversations.
    const requests = (status: string, endpoint: string) =>
      new RegExp(`agent_requests_total\\{[^}]*agent_type="triage-agent",status="${status}",endpoint="${endpoint}"[^}]*\\} (\\d+)\\n`).exec(text)?.[1];
    expect(['success', 'refused', 'error'].map((st) => requests(st, '/api/v1/agents'))).toEqual(['1', '2', undefined]);
    expect(['success', 'refused', 'error'].map((st) => requests(st, '/api/v1/conversations'))).toEqual(['1', '1', undefined]);
    // agent_errors_total holds the 502 alone.
    expect([...text.matchAll(/^agent_errors_total\{[^}]*error_type="([^"]+)"[^}]*\} (\d+)$/gm)].map((m) => `${m[1]} ${m[2]}`)).toEqual([
      'SIDECAR_UPSTREAM_UNAVAILABLE 1',
    ]);
    expect(text).toContain('le="30"');
  });

  it('keeps answering while the collector is down, counts the drops, and resumes when it is back', async () => {
    await receiver.stop();
    const auth = { authorization: `Bearer ${analyst}` };
    for (let i = 0; i < 20; i++) expect((await get('/api/v1/agents', auth)).status).toBe(200);
    const deadline = Date.now() + 10_000;
    let text = '';
    while (Date.now() < deadline) {
      text = await scrape();
      if (/agent_telemetry_dropped_total\{[^}]*signal="traces"[^}]*reason="export_failed"[^}]*\} [1-9]/.test(text)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(text).toMatch(/agent_telemetry_dropped_total\{[^}]*signal="traces"[^}]*\} [1-9]/);
    receiver.clear();
    await receiver.start();
    // What is produced while the exporters reconnect (gRPC backoff) is dropped and counted; later traffic goes through.
    const sent: string[] = [];
    const until = Date.now() + 20_000;
    while (Date.now() < until && !receiver.logs().some((r) => sent.includes(String(r.attributes.request_id)))) {
      const again = await get('/api/v1/agents', auth);
      expect(again.status).toBe(200);
      sent.push(again.requestId);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(receiver.logs().some((r) => sent.includes(String(r.attributes.request_id)))).toBe(true);
    await receiver.waitFor(receiver.spans, (s) => s.some((x) => x.kindName === 'SERVER'), 10_000);
  }, 40_000);
});

describe('request-path histograms', () => {
  it('hand each reader SDK-shaped points, cumulative or delta', async () => {
    const h = createHistograms();
    const cell = h.requestDuration.cell('x', () => ({ endpoint: '/x' }));
    for (const v of [0.05, 0.1, 0.7, 40]) cell.record(v);
    const resource = resourceFromAttributes({});
    const cumulative = new HistogramProducer(h.all, resource, AggregationTemporality.CUMULATIVE);
    const delta = new HistogramProducer(h.all, resource, AggregationTemporality.DELTA);
    const pointOf = async (p: HistogramProducer) => {
      const metric = (await p.collect()).resourceMetrics.scopeMetrics[0]?.metrics.find((m) => m.descriptor.name === 'agent_request_duration_seconds');
      if (metric === undefined) return undefined;
      expect(metric.dataPointType).toBe(DataPointType.HISTOGRAM);
      return metric.dataPoints[0]!.value as { buckets: { boundaries: number[]; counts: number[] }; count: number; sum: number; min?: number; max?: number };
    };
    expect(await pointOf(cumulative)).toMatchObject({
      buckets: { boundaries: [0.1, 0.5, 1, 2, 5, 10, 30], counts: [2, 0, 1, 0, 0, 0, 0, 1] },
      count: 4,
      min: 0.05,
      max: 40,
    });
    expect((await pointOf(delta))?.count).toBe(4);
    expect(await pointOf(delta)).toBeUndefined();
    cell.record(3);
    expect(await pointOf(delta)).toMatchObject({ buckets: { counts: [0, 0, 0, 0, 1, 0, 0, 0] }, count: 1, sum: 3 });
    expect((await pointOf(cumulative))?.count).toBe(5);
  });
});

describe('telemetry and untrusted input', () => {
  const activeSessions = async () => Number(/agent_active_sessions\{[^}]*\} (\d+)/.exec(await scrape())?.[1] ?? 'NaN');

  it('counts no sessions for refused requests or implausible session ids', async () => {
    const before = await activeSessions();
    for (let i = 0; i < 5; i++) expect((await get('/api/v1/agents', { 'x-session-id': `spam-${i}` })).status).toBe(401);
    expect((await get('/api/v1/agents', { authorization: `Bearer ${user}`, 'x-session-id': 'x'.repeat(500) })).status).toBe(403);
    expect((await get('/api/v1/agents', { authorization: `Bearer ${analyst}`, 'x-session-id': 'y'.repeat(500) })).status).toBe(200);
    // The last one counts through the token's own session id (sid), already seen.
    expect(await activeSessions()).toBe(before);
  });

  it('two refusals of one status with different codes are one http.server.request.duration series, not two of the same labels', async () => {
    expect((await get('/api/v1/metrics')).status).toBe(401);
    expect((await get('/api/v1/metrics', { authorization: 'Bearer not-a-token' })).status).toBe(401);
    const series = (await scrape()).split('\n').filter((l) => /^http_server_request_duration_seconds_count\{[^}]*http_route="\/api\/v1\/metrics"/.test(l));
    expect(series.map((l) => l.replace(/^[^{]*\{[^}]*\} /, ''))).toEqual(['2']);
  });

  it('with telemetry.encoder sdk, exports the same spans and access records through the SDK serializers', async () => {
    const sdk = await startSidecar({
      upstream: { url: upstream.url },
      telemetry: {
        endpoint: receiver.endpoint,
        serviceName: 'sdk-encoded',
        encoder: 'sdk',
        errorLogInterval: '1h',
        traces: { scheduledDelay: '50ms' },
        logs: { scheduledDelay: '50ms' },
      },
    });
    try {
      const res = await request(`${sdk.url}/sdk-encoded`);
      await res.body.dump();
      const requestId = String(res.headers['x-request-id']);
      const spans = await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.resource['service.name'] === 'sdk-encoded' && x.kindName === 'CLIENT'));
      const server = spans.find((x) => x.resource['service.name'] === 'sdk-encoded' && x.kindName === 'SERVER')!;
      const client = spans.find((x) => x.resource['service.name'] === 'sdk-encoded' && x.kindName === 'CLIENT')!;
      expect(client.parentSpanId).toBe(server.spanId);
      expect(server.attributes).toMatchObject({ 'http.request.method': 'GET', 'url.path': '/sdk-encoded', 'http.response.status_code': 200 });
      const logs = await receiver.waitFor(receiver.logs, (l) => l.some((r) => r.attributes.request_id === requestId));
      const access = logs.find((r) => r.attributes.request_id === requestId)!;
      expect(access).toMatchObject({ severityText: 'INFO', traceId: server.traceId, spanId: server.spanId, scope: { name: 'agent-sidecar' } });
      expect(access.attributes).toMatchObject({ event_type: 'access', path: '/sdk-encoded', status_code: 200 });
      expect(access.resource['service.name']).toBe('sdk-encoded');
    } finally {
      await sdk.close();
    }
  });

  it('with traces off, never passes a client trace context on', async () => {
    const quiet = await startSidecar({
      upstream: { url: upstream.url },
      telemetry: { endpoint: receiver.endpoint, errorLogInterval: '1h', traces: { enabled: false } },
    });
    try {
      seen.length = 0;
      const res = await request(`${quiet.url}/plain`, { headers: { traceparent: CLIENT_TRACEPARENT, baggage: 'tenant=evil' } });
      await res.body.dump();
      expect(seen[0]).toMatchObject({ traceparent: undefined, baggage: undefined });
    } finally {
      await quiet.close();
    }
  });
});
