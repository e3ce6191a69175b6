import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { AGENTGATEWAY_MARK, agentgatewayConfig, agentgatewayPath, agentgatewayRule, findAgentgateway } from '../bench/lib/agentgateway.ts';
import { AUTH_AUDIENCE, AUTH_ROLES, discoveryDocument, sidecarAuthConfig } from '../bench/lib/auth.ts';
import { EGRESS_REQUEST, hasConfigKey, missingFeature, protectBody } from '../bench/lib/features.ts';
import { oauth2ProxyArgs } from '../bench/lib/oauth2-proxy.ts';
import { EventCounter, percentiles, sseEvents, summarizeStreams } from '../bench/lib/sse.ts';
import { TELEMETRY_MARK } from '../bench/lib/telemetry.ts';
import { goToolPath, OAUTH2_PROXY, VEGETA } from '../bench/lib/tools.ts';
import { vegetaTarget } from '../bench/lib/vegeta.ts';
import { wrkScript } from '../bench/lib/wrk.ts';

const tmp = mkdtempSync(join(os.tmpdir(), 'bench-fixtures-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('SSE events', () => {
  it('makes n events, the last one [DONE], each a data line and a blank line', () => {
    const events = sseEvents(1000);
    expect(events).toHaveLength(1000);
    expect(events.at(-1)).toBe('data: [DONE]\n\n');
    const chunk = JSON.parse(events[41]!.slice('data: '.length)) as { choices: Array<{ delta: { content: string } }> };
    expect(chunk.choices[0]!.delta.content).toBe('token-00041 ');
    expect(events.every((e) => /^data: [^\n]+\n\n$/.test(e))).toBe(true);
  });

  it('counts events however the stream is cut into chunks', () => {
    const bytes = Buffer.from(sseEvents(50).join(''));
    for (const size of [1, 2, 3, 7, 64, 1000, bytes.length]) {
      const counter = new EventCounter();
      for (let i = 0; i < bytes.length; i += size) counter.feed(bytes.subarray(i, i + size));
      expect(counter.count, `chunks of ${size}`).toBe(50);
    }
  });

  it('says how many events a chunk completed, including one whose blank line starts the next chunk', () => {
    const counter = new EventCounter();
    expect(counter.feed(Buffer.from('data: a\n'))).toBe(0);
    expect(counter.feed(Buffer.from('\ndata: b\n\ndata: c'))).toBe(2);
    expect(counter.feed(Buffer.from('\n\n\n'))).toBe(1);
    expect(counter.feed(Buffer.from(''))).toBe(0);
    expect(counter.feed(Buffer.from('\n'))).toBe(1);
  });

  it('summarizes streams: rates over the duration, nearest-rank percentiles', () => {
    const r = summarizeStreams({
      durationSeconds: 2,
      ttfeUs: [4, 1, 3, 2],
      totalUs: [40, 10, 30, 20],
      events: 4000,
      errors: { status: 1, short: 0, error: 0 },
    });
    expect(r.streams).toBe(4);
    expect(r.streamsPerSecond).toBe(2);
    expect(r.eventsPerSecond).toBe(2000);
    expect(r.ttfeUs).toEqual({ p50: 2, p90: 4, p99: 4, p999: 4, max: 4 });
    expect(r.totalUs.p50).toBe(20);
    expect(r.errors.status).toBe(1);
    expect(Number.isNaN(percentiles([]).p50)).toBe(true);
  });
});

describe('scenarios waiting for a feature', () => {
  it('finds top-level keys of the sidecar configuration', () => {
    expect(hasConfigKey('telemetry')).toBe(true);
    expect(hasConfigKey('no-such-section')).toBe(false);
    expect(hasConfigKey('protection', { protection: {} })).toBe(true);
  });

  it('says what is missing: the feature, then its bench configuration', () => {
    expect(missingFeature('protect', { hasKey: () => false, configured: false })).toBe(
      "scenario protect needs the protection engine: this build's configuration has no `protection` key",
    );
    expect(missingFeature('egress', { hasKey: () => false, configured: false })).toMatch(/needs the egress listener: .* no `egress` key/);
    expect(missingFeature('egress', { hasKey: () => true, configured: false })).toMatch(
      /bench\/lib\/features\.ts has no configuration for it yet \(egressConfig\)/,
    );
    expect(missingFeature('protect', { hasKey: () => true, configured: true })).toBeUndefined();
    expect(missingFeature('full')).toBeUndefined();
  });

  it('makes the protect request exactly 4 KB of JSON with personal data in it', () => {
    const body = protectBody();
    expect(Buffer.byteLength(body)).toBe(4096);
    const doc = JSON.parse(body) as { customer: { email: string }; messages: unknown[] };
    expect(doc.customer.email).toContain('@');
    expect(doc.messages.length).toBeGreaterThan(10);
    expect(Buffer.byteLength(protectBody(8192))).toBe(8192);
    expect(() => protectBody(100)).toThrow(/cannot make a document of 100 bytes/);
  });

  it('asks for a streamed chat completion in the egress scenario', () => {
    expect(JSON.parse(EGRESS_REQUEST.body)).toMatchObject({ stream: true });
    expect(EGRESS_REQUEST.method).toBe('POST');
  });
});

describe('load generator requests', () => {
  it('leaves a GET to wrk -H and adds method and body for a POST', () => {
    expect(wrkScript()).not.toContain('wrk.method');
    const script = wrkScript({ method: 'POST', body: '{"a":"]=]"}' });
    expect(script).toContain('wrk.method = "POST"');
    // The body holds "]=]", so the long bracket goes one level up.
    expect(script).toContain('wrk.body = [==[{"a":"]=]"}]==]');
    expect(script).toContain('done = function');
  });

  it('writes a vegeta target with headers and the body in a file', () => {
    const bodyFile = join(tmp, 'body');
    const target = vegetaTarget('http://127.0.0.1:1/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' }, bodyFile);
    expect(target).toBe(`POST http://127.0.0.1:1/x\ncontent-type: application/json\n@${bodyFile}\n`);
    expect(readFileSync(bodyFile, 'utf8')).toBe('{"a":1}');
    expect(vegetaTarget('http://127.0.0.1:1/', {}, bodyFile)).toBe('GET http://127.0.0.1:1/\n');
  });
});

describe('peers and identity', () => {
  it('configures oauth2-proxy for bearer JWTs from the issuer, the roles claim as groups', () => {
    const args = oauth2ProxyArgs({
      listen: '127.0.0.1:4180',
      upstream: 'http://127.0.0.1:8080/',
      issuer: 'http://127.0.0.1:9000',
      cookieSecret: 'x'.repeat(32),
      roles: ['analyst'],
    });
    expect(args).toEqual(
      expect.arrayContaining([
        '--http-address=127.0.0.1:4180',
        '--upstream=http://127.0.0.1:8080/',
        '--provider=oidc',
        '--oidc-issuer-url=http://127.0.0.1:9000',
        '--client-id=agent-sidecar-bench',
        '--skip-jwt-bearer-tokens',
        '--bearer-token-login-fallback=false',
        '--oidc-groups-claim=roles',
        '--allowed-group=analyst',
        '--request-logging=false',
      ]),
    );
  });

  it('serves discovery for the issuer it names, and configures the sidecar for the same issuer', () => {
    const doc = discoveryDocument('http://127.0.0.1:9000');
    expect(doc).toMatchObject({
      issuer: 'http://127.0.0.1:9000',
      jwks_uri: 'http://127.0.0.1:9000/.well-known/jwks.json',
      id_token_signing_alg_values_supported: ['RS256'],
    });
    const yaml = sidecarAuthConfig({ issuer: 'http://127.0.0.1:9000', jwksUrl: doc.jwks_uri as string }, '/p.yaml');
    expect(yaml).toContain('issuer: http://127.0.0.1:9000');
    expect(yaml).toContain('jwksUrl: http://127.0.0.1:9000/.well-known/jwks.json');
  });

  it('caches Go tools outside the repository, a pinned version in its own directory', () => {
    const env = { XDG_CACHE_HOME: '/cache' };
    expect(goToolPath(VEGETA, env)).toBe('/cache/agent-sidecar/bin/vegeta');
    expect(goToolPath(OAUTH2_PROXY, env)).toBe('/cache/agent-sidecar/bin/oauth2-proxy-v7.15.6/oauth2-proxy');
  });

  it('looks for agentgateway at BENCH_AGENTGATEWAY, else in the cache directory, and finds no binary that is not there', () => {
    expect(agentgatewayPath({ XDG_CACHE_HOME: '/cache' })).toBe('/cache/agent-sidecar/peers/agentgateway');
    expect(agentgatewayPath({ XDG_CACHE_HOME: '/cache', BENCH_AGENTGATEWAY: '/opt/agw' })).toBe('/opt/agw');
    expect(agentgatewayPath({ XDG_CACHE_HOME: '/cache', BENCH_AGENTGATEWAY: '' })).toBe('/cache/agent-sidecar/peers/agentgateway');
    expect(findAgentgateway({ BENCH_AGENTGATEWAY: join(tmp, 'no-such-agentgateway') })).toEqual({ path: join(tmp, 'no-such-agentgateway'), found: false });
  });
});

describe('agentgateway configuration', () => {
  const ports = { port: 3000, adminPort: 3001, statsPort: 3002, readinessPort: 3003, upstream: '127.0.0.1:8080' };
  const auth = { issuer: 'http://127.0.0.1:9000', jwks: { url: 'http://127.0.0.1:9000/.well-known/jwks.json' }, roles: AUTH_ROLES };
  /** Through YAML and back, as the binary reads it. */
  const roundTrip = (o: Parameters<typeof agentgatewayConfig>[0]) =>
    parse(stringify(agentgatewayConfig(o))) as {
      config: Record<string, unknown>;
      frontendPolicies?: { tracing: Record<string, unknown> };
      binds: Array<{ port: number; listeners: Array<{ protocol: string; routes: Array<Record<string, unknown>> }> }>;
    };

  it('admits exactly the given roles from the roles array', () => {
    expect(agentgatewayRule(['analyst'])).toBe('jwt.roles.exists(r, r == "analyst")');
    expect(agentgatewayRule(['analyst', 'agent_manager'])).toBe('jwt.roles.exists(r, r == "analyst" || r == "agent_manager")');
    expect(() => agentgatewayRule([])).toThrow(/at least one role/);
  });

  it('is a plain proxy to the upstream on loopback ports, access log off, in passthrough', () => {
    const c = roundTrip(ports);
    expect(c.config).toEqual({
      logging: { filter: 'false' },
      enableIpv6: false,
      adminAddr: '127.0.0.1:3001',
      statsAddr: '127.0.0.1:3002',
      readinessAddr: '127.0.0.1:3003',
    });
    expect(c.binds).toEqual([{ port: 3000, listeners: [{ protocol: 'HTTP', routes: [{ name: 'upstream', backends: [{ host: '127.0.0.1:8080' }] }] }] }]);
    expect(c.frontendPolicies).toBeUndefined();
  });

  it('verifies JWTs strictly against the issuer, audience and JWKS, and authorizes the roles with CEL, in auth', () => {
    const route = roundTrip({ ...ports, auth }).binds[0]!.listeners[0]!.routes[0]!;
    expect(route.policies).toEqual({
      jwtAuth: { mode: 'strict', issuer: 'http://127.0.0.1:9000', audiences: [AUTH_AUDIENCE], jwks: { url: 'http://127.0.0.1:9000/.well-known/jwks.json' } },
      authorization: { rules: ['jwt.roles.exists(r, r == "analyst")'] },
    });
    const fromFile = roundTrip({ ...ports, auth: { ...auth, jwks: { file: '/tmp/jwks.json' } } }).binds[0]!.listeners[0]!.routes[0]!;
    expect((fromFile.policies as { jwtAuth: { jwks: unknown } }).jwtAuth.jwks).toEqual({ file: '/tmp/jwks.json' });
  });

  it('adds traces over OTLP gRPC with its mark and turns its access log on, in full', () => {
    const c = roundTrip({ ...ports, auth, tracing: { host: '127.0.0.1:4317' } });
    expect(c.config.logging).toBeUndefined();
    expect(c.frontendPolicies?.tracing).toEqual({
      host: '127.0.0.1:4317',
      protocol: 'grpc',
      randomSampling: true,
      resources: { [TELEMETRY_MARK.key]: `"${AGENTGATEWAY_MARK}"` },
    });
    expect(c.binds[0]!.listeners[0]!.routes[0]!.policies).toBeDefined();
  });
});
