/**
 * End to end with a real redis-server: revocation through the admin API and its fail modes,
 * and rate limits shared by two real sidecar processes. The upstream records every request.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeyRecordSchema, generateApiKey, writeApiKeyFile } from '../src/auth/index.ts';
import { issueToken } from '../src/auth/issuer.ts';
import type { SidecarConfigInput } from '../src/config/index.ts';
import { spawnCli, startServer, startSidecar, waitForStartup } from './helpers.ts';
import { startRedis, type RedisServer } from './redis-server.ts';

const SECRET = 's'.repeat(48);
const ADMIN_TOKEN = 'admin-token-'.padEnd(48, 'x');
const nowS = () => Math.floor(Date.now() / 1000);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const CLEAN_ENV: NodeJS.ProcessEnv = { SIDECAR_CONFIG: '', SIDECAR_LISTEN: '', SIDECAR_UPSTREAM: '', SIDECAR_ADMIN: '', SIDECAR_LOG_LEVEL: '' };

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

async function startRecordingUpstream() {
  const seen: Seen[] = [];
  const server = await startServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers } });
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
  return {
    ...server,
    seen,
    /** Requests that reached an API path (readiness probes hit `/` and are not counted). */
    api: () => seen.filter((s) => s.url.startsWith('/api/')),
    reset: () => void seen.splice(0),
  };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  code: string | undefined;
  json: Record<string, unknown> | undefined;
}

function call(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = undefined;
        }
        const code = (json?.error as { code?: string } | undefined)?.code;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, code, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ready = async (adminUrl: string) => (await call(adminUrl, 'GET', '/readyz')).status === 200;

let upstream: Awaited<ReturnType<typeof startRecordingUpstream>>;
let dir: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'access-stores-e2e-'));
  upstream = await startRecordingUpstream();
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await upstream?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('9. revocation with a real redis-server', () => {
  let redis: RedisServer;
  let closed: Awaited<ReturnType<typeof startSidecar>>;
  let open: Awaited<ReturnType<typeof startSidecar>>;

  beforeAll(async () => {
    redis = await startRedis();
    closers.push(() => redis.close());
    const base = (failMode: 'open' | 'closed'): SidecarConfigInput => ({
      upstream: { url: upstream.url },
      auth: { jwt: { secret: SECRET } },
      admin: { token: ADMIN_TOKEN },
      stores: { redis: { url: redis.url } },
      revocation: { failMode },
    });
    closed = await startSidecar(base('closed'));
    closers.push(closed.close);
    open = await startSidecar(base('open'));
    closers.push(open.close);
    await until(() => ready(closed.adminUrl), 5000, 'readiness (fail closed)');
    await until(() => ready(open.adminUrl), 5000, 'readiness (fail open)');
  });

  const revoke = (body: Record<string, unknown>, token = ADMIN_TOKEN) =>
    call(closed.adminUrl, 'POST', '/revoke', { ...bearer(token), 'content-type': 'application/json' }, JSON.stringify(body));
  const agents = (base: string, token: string) => call(base, 'GET', '/api/v1/agents', bearer(token));

  it('revoking a jti through POST /revoke refuses that token only', async () => {
    const revoked = await issueToken(SECRET, { sub: 'dave', roles: ['analyst'], jti: 'jti-revoked' }, 600_000);
    const { exp } = decodeJwt(revoked) as { exp: number };
    const other = await issueToken(SECRET, { sub: 'dave', roles: ['analyst'], jti: 'jti-kept' }, 600_000);
    expect((await agents(closed.url, revoked)).status).toBe(200);

    // Neither a missing nor a non-admin credential may revoke.
    expect((await call(closed.adminUrl, 'POST', '/revoke', { 'content-type': 'application/json' }, JSON.stringify({ jti: 'x', exp }))).code).toBe(
      'SIDECAR_CREDENTIALS_MISSING',
    );
    expect((await revoke({ jti: 'jti-revoked', exp }, other)).code).toBe('SIDECAR_FORBIDDEN');

    const res = await revoke({ jti: 'jti-revoked', exp });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ revoked: { jti: 'jti-revoked', exp } });

    upstream.reset();
    // Redis is shared: both sidecars refuse it.
    for (const base of [closed.url, open.url]) {
      const r = await agents(base, revoked);
      expect([r.status, r.code]).toEqual([401, 'SIDECAR_TOKEN_REVOKED']);
    }
    expect(upstream.api()).toEqual([]);
    expect((await agents(closed.url, other)).status).toBe(200);
    expect(upstream.api().map((s) => s.headers['x-auth-subject'])).toEqual(['dave']);
  });

  it('revoking a subject refuses its tokens issued before the watermark, not later ones', async () => {
    const earlier = () => Date.now() - 120_000;
    const old1 = await issueToken(SECRET, { sub: 'erin', roles: ['analyst'] }, 600_000, { now: earlier });
    const old2 = await issueToken(SECRET, { sub: 'erin', roles: ['user'] }, 600_000, { now: earlier });
    const bystander = await issueToken(SECRET, { sub: 'frank', roles: ['analyst'] }, 600_000, { now: earlier });
    expect((await agents(closed.url, old1)).status).toBe(200);

    expect((await revoke({ sub: 'erin', before: nowS() - 60 })).status).toBe(200);
    const fresh = await issueToken(SECRET, { sub: 'erin', roles: ['analyst'] }, 600_000);

    upstream.reset();
    expect((await agents(closed.url, old1)).code).toBe('SIDECAR_TOKEN_REVOKED');
    expect((await call(closed.url, 'GET', '/api/v1/conversations', bearer(old2))).code).toBe('SIDECAR_TOKEN_REVOKED');
    expect(upstream.api()).toEqual([]);
    expect((await agents(closed.url, fresh)).status).toBe(200);
    expect((await agents(closed.url, bystander)).status).toBe(200);
  });

  it('Redis down: fail closed answers 503, fail open lets through, /readyz is not ready; after a restart requests work again', async () => {
    const token = await issueToken(SECRET, { sub: 'gina', roles: ['analyst'] }, 600_000);
    expect((await agents(closed.url, token)).status).toBe(200);

    await redis.stop();
    upstream.reset();
    const refused = await agents(closed.url, token);
    expect([refused.status, refused.code]).toEqual([503, 'SIDECAR_STORE_UNAVAILABLE']);
    expect(upstream.api()).toEqual([]);
    expect((await agents(open.url, token)).status).toBe(200);
    expect(upstream.api()).toHaveLength(1);
    for (const admin of [closed.adminUrl, open.adminUrl]) {
      const r = await call(admin, 'GET', '/readyz');
      expect(r.status).toBe(503);
      expect((r.json?.checks as Record<string, string>).redis).not.toBe('ok');
    }
    // Revoking while Redis is down cannot be recorded: 503, never a false 200.
    expect((await revoke({ sub: 'gina' })).code).toBe('SIDECAR_STORE_UNAVAILABLE');

    await redis.start();
    await until(async () => (await agents(closed.url, token)).status === 200, 10_000, 'requests after the Redis restart');
    await until(() => ready(closed.adminUrl), 5000, 'readiness after the Redis restart');
  });
});

describe('10. rate limits across two sidecar processes sharing Redis', () => {
  let redis: RedisServer;
  const procs: Array<{ url: string; adminUrl: string }> = [];
  let key: string;

  beforeAll(async () => {
    redis = await startRedis();
    closers.push(() => redis.close());
    // An API key: no revocation check, so every fail mode in play is a default one.
    const fresh = generateApiKey();
    key = fresh.key;
    const keyFile = join(dir, 'keys.yaml');
    await writeApiKeyFile(keyFile, [
      apiKeyRecordSchema.parse({
        id: fresh.id,
        hash: fresh.hash,
        subject: 'limited-bot',
        roles: ['analyst'],
        enabled: true,
        createdAt: new Date().toISOString(),
      }),
    ]);
    const config = join(dir, 'ratelimit.yaml');
    writeFileSync(
      config,
      stringify({
        listen: { address: '127.0.0.1:0' },
        admin: { address: '127.0.0.1:0' },
        upstream: { url: upstream.url },
        auth: { apiKeys: { file: keyFile } },
        stores: { redis: { url: redis.url } },
        rateLimit: { perPrincipal: { requests: 5, per: '1m' } },
      }),
    );
    for (let i = 0; i < 2; i++) {
      const proc = spawnCli(['run', '--config', config], CLEAN_ENV);
      closers.push(async () => {
        if (proc.child.exitCode === null && proc.child.signalCode === null) {
          proc.child.kill('SIGKILL');
          await once(proc.child, 'exit');
        }
      });
      const info = await waitForStartup(proc);
      procs.push({ url: info.listen, adminUrl: `http://${info.admin}` });
    }
    for (const p of procs) await until(() => ready(p.adminUrl), 5000, 'readiness of a sidecar process');
  });

  it('3 requests to A and 3 to B with one principal: exactly 5 pass, the 6th is 429 with Retry-After and RateLimit', async () => {
    const [a, b] = procs as [(typeof procs)[0], (typeof procs)[0]];
    upstream.reset();
    const results: Reply[] = [];
    for (const base of [a.url, a.url, a.url, b.url, b.url, b.url]) results.push(await call(base, 'GET', '/api/v1/agents', { 'x-api-key': key }));
    expect(results.map((r) => [r.status, r.code])).toEqual([...Array.from({ length: 5 }, () => [200, undefined]), [429, 'SIDECAR_RATE_LIMITED']]);
    const limited = results[5]!;
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.headers.ratelimit).toMatch(/^"principal";r=0;t=\d+$/);
    expect(limited.headers['ratelimit-policy']).toMatch(/^"principal";q=5;w=60$/);
    expect(upstream.api()).toHaveLength(5);
  });

  it('with Redis down, rate limits fail open by default: requests pass', async () => {
    const [a, b] = procs as [(typeof procs)[0], (typeof procs)[0]];
    expect((await call(a.url, 'GET', '/api/v1/agents', { 'x-api-key': key })).code).toBe('SIDECAR_RATE_LIMITED');
    await redis.stop();
    upstream.reset();
    const results: number[] = [];
    for (const base of [a.url, b.url, a.url, b.url]) results.push((await call(base, 'GET', '/api/v1/agents', { 'x-api-key': key })).status);
    expect(results).toEqual([200, 200, 200, 200]);
    expect(upstream.api()).toHaveLength(4);
  });
});
