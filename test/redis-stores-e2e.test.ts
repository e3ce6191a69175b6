/**
 * Every Redis store's keys written by one side and read by the other, all of them real:
 * a redis-server, the CLI as a child process (`keys create|list|revoke --redis`,
 * `revoke --redis`), two sidecar processes sharing the Redis, HTTP requests through them.
 * Run with the default key prefix and with others (one holding SCAN's glob characters),
 * and then Redis is checked for keys that carry the prefix twice or not at all.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../src/auth/issuer.ts';
import { anthropicStream, startFakeProvider, type FakeProvider } from './fake-provider.ts';
import { spawnCli, startServer, waitForStartup } from './helpers.ts';
import { startRedis, type RedisServer } from './redis-server.ts';

const SECRET = 's'.repeat(48);
const CLEAN_ENV: NodeJS.ProcessEnv = {
  SIDECAR_CONFIG: '',
  SIDECAR_LISTEN: '',
  SIDECAR_UPSTREAM: '',
  SIDECAR_ADMIN: '',
  SIDECAR_LOG_LEVEL: '',
  SIDECAR_ADMIN_TOKEN: '',
};
// claude-sonnet-4-6 at $3 input and $15 output per million tokens: 1000 tokens each way.
const CALL_USD = (1000 * 3 + 1000 * 15) / 1e6;

interface Reply {
  status: number;
  code: string | undefined;
}

function call(base: string, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let code: string | undefined;
        try {
          code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
        } catch {
          code = undefined;
        }
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The CLI run to completion. */
async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawnCli(args, CLEAN_ENV);
  const code = await proc.exited;
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let redis: RedisServer;
let raw: Redis;
let provider: FakeProvider;
let upstream: Awaited<ReturnType<typeof startServer>>;
const subjects: string[] = [];
let dir: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'redis-stores-e2e-'));
  redis = await startRedis();
  // An observer with the full key names: no prefix of its own.
  raw = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  await once(raw, 'ready');
  provider = await startFakeProvider();
  upstream = await startServer((req, res) => {
    if (req.url?.startsWith('/api/')) subjects.push(String(req.headers['x-auth-subject']));
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  raw?.disconnect();
  await provider?.close();
  await upstream?.close();
  await redis?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// undefined: the default, with no flag given to the CLI and no keyPrefix in the config.
describe.each([
  { prefix: undefined, name: 'agent-sidecar:' },
  { prefix: 'team-a/', name: 'team-a/' },
  { prefix: 'odd[*]?\\:', name: 'odd[*]?\\:' },
])('key prefix $name', ({ prefix, name }) => {
  const sidecars: Array<{ url: string; admin: string; egress: string }> = [];
  const prefixFlag = (flag: string) => (prefix === undefined ? [] : [flag, prefix]);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    const config = join(dir, `sidecar-${sidecars.length}-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      config,
      stringify({
        listen: { address: '127.0.0.1:0' },
        admin: { address: '127.0.0.1:0' },
        upstream: { url: upstream.url },
        auth: { jwt: { secret: SECRET }, apiKeys: { redis: true } },
        stores: { redis: { url: redis.url, ...(prefix === undefined ? {} : { keyPrefix: prefix }) } },
        rateLimit: { perPrincipal: { requests: 4, per: '1m' } },
        egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } }, budgets: { limits: [{ window: 'month', usd: CALL_USD / 2 }] } },
        telemetry: { enabled: false, agentType: 'shared-agent' },
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
      const info = (await waitForStartup(proc)) as { listen: string; admin: string; egress?: string };
      sidecars.push({ url: info.listen, admin: `http://${info.admin}`, egress: /^http:\/\/\S+/.exec(info.egress ?? '')![0] });
    }
    for (const s of sidecars) await until(async () => (await call(s.admin, '/readyz')).status === 200, 'readiness of a sidecar process');
  });

  it('a key made by `keys create --redis` is accepted by both sidecars; `keys list` shows it; after `keys revoke --redis` it is refused', async () => {
    const created = await cli(['keys', 'create', '--redis', redis.url, ...prefixFlag('--prefix'), '--sub', `bot-${name}`, '--role', 'analyst']);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    const id = /^sk_sidecar_([a-z0-9]+)_/.exec(key)![1]!;

    subjects.length = 0;
    for (const s of sidecars) expect(await call(s.url, '/api/v1/agents', { 'x-api-key': key })).toEqual({ status: 200, code: undefined });
    expect(subjects).toEqual([`bot-${name}`, `bot-${name}`]);

    const listed = await cli(['keys', 'list', '--redis', redis.url, ...prefixFlag('--prefix')]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(id);

    const revoked = await cli(['keys', 'revoke', '--redis', redis.url, ...prefixFlag('--prefix'), '--id', id]);
    expect(revoked.code).toBe(0);
    for (const s of sidecars) expect(await call(s.url, '/api/v1/agents', { 'x-api-key': key })).toEqual({ status: 401, code: 'SIDECAR_API_KEY_INVALID' });
  });

  it('`revoke --redis` of a jti and of a subject is honoured by both sidecars', async () => {
    const sub = `dave-${name}`;
    const earlier = () => Date.now() - 120_000;
    const token = await issueToken(SECRET, { sub, roles: ['analyst'], jti: `jti-${name}` }, 600_000, { now: earlier });
    const other = await issueToken(SECRET, { sub, roles: ['analyst'], jti: `kept-${name}` }, 600_000, { now: earlier });
    expect((await call(sidecars[0]!.url, '/api/v1/agents', bearer(token))).status).toBe(200);

    const { exp } = decodeJwt(token) as { exp: number };
    const byJti = await cli(['revoke', '--redis', redis.url, ...prefixFlag('--key-prefix'), '--jti', `jti-${name}`, '--exp', String(exp)]);
    expect(byJti.code).toBe(0);
    for (const s of sidecars) {
      expect(await call(s.url, '/api/v1/agents', bearer(token))).toEqual({ status: 401, code: 'SIDECAR_TOKEN_REVOKED' });
      expect((await call(s.url, '/api/v1/agents', bearer(other))).status).toBe(200);
    }

    const bySubject = await cli([
      'revoke',
      '--redis',
      redis.url,
      ...prefixFlag('--key-prefix'),
      '--sub',
      sub,
      '--before',
      String(Math.floor(Date.now() / 1000) - 60),
    ]);
    expect(bySubject.code).toBe(0);
    for (const s of sidecars) expect(await call(s.url, '/api/v1/agents', bearer(other))).toEqual({ status: 401, code: 'SIDECAR_TOKEN_REVOKED' });
  });

  it('the two sidecars share one rate limit', async () => {
    const token = await issueToken(SECRET, { sub: `limited-${name}`, roles: ['analyst'] }, 600_000);
    const [a, b] = sidecars as [(typeof sidecars)[0], (typeof sidecars)[0]];
    const statuses: Array<[number, string | undefined]> = [];
    for (const s of [a, b, a, b, a]) {
      const r = await call(s.url, '/api/v1/agents', bearer(token));
      statuses.push([r.status, r.code]);
    }
    expect(statuses).toEqual([
      [200, undefined],
      [200, undefined],
      [200, undefined],
      [200, undefined],
      [429, 'SIDECAR_RATE_LIMITED'],
    ]);
  });

  it('the two egress listeners share one LLM budget', async () => {
    const [a, b] = sidecars as [(typeof sidecars)[0], (typeof sidecars)[0]];
    const body = JSON.stringify({ model: 'claude-sonnet-4-6', stream: true, max_tokens: 2000, messages: [] });
    provider.next({ events: anthropicStream({ model: 'claude-sonnet-4-6', input: 1000, cacheRead: 0, cacheWrite: 0, outputs: [1000] }) });
    expect((await call(a.egress, '/anthropic/v1/messages', { 'content-type': 'application/json' }, 'POST', body)).status).toBe(200);
    // The spend lands once the answer has been read through.
    const budgetKeys = async () => (await raw.keys('*')).filter((k) => k.startsWith(`${prefix ?? 'agent-sidecar:'}budget:`));
    await expect.poll(async () => (await budgetKeys()).length).toBeGreaterThan(0);
    const seen = provider.seen.length;
    expect(await call(b.egress, '/anthropic/v1/messages', { 'content-type': 'application/json' }, 'POST', body)).toEqual({
      status: 429,
      code: 'SIDECAR_BUDGET_EXCEEDED',
    });
    expect(provider.seen.length).toBe(seen);
  });

  it('every key in Redis carries the prefix once', async () => {
    const full = prefix ?? 'agent-sidecar:';
    const keys = await raw.keys('*');
    const ours = keys.filter((k) => k.startsWith(full));
    for (const store of ['apikey:', 'revoked:jti:', 'revoked:sub:', 'ratelimit:', 'budget:']) expect(ours.some((k) => k.startsWith(full + store))).toBe(true);
    expect(ours.filter((k) => k.startsWith(full + full))).toEqual([]);
    // Clean for the next prefix: its budget and limits start from nothing.
    if (ours.length > 0) await raw.del(...ours);
  });
});
