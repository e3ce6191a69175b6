import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryAudit } from '../src/audit/index.ts';
import type { Principal } from '../src/auth/principal.ts';
import { SidecarError } from '../src/errors/index.ts';
import { createLogger } from '../src/log/index.ts';
import {
  createMemoryRevocationStore,
  createRedisRevocationStore,
  createRevocationAdmin,
  createRevocationCheck,
  revocationKeys,
  type RevocationStore,
} from '../src/revocation/index.ts';
import { createRedis, redisReadiness, waitForRedis, type StoreClient } from '../src/stores/index.ts';
import { captureLogs, CLI, startServer } from './helpers.ts';
import { startRedis, type RedisServer } from './redis-server.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADMIN_TOKEN = 'a'.repeat(40);
const now = () => Math.floor(Date.now() / 1000);
const principal = (p: Partial<Principal>): Principal => ({ subject: `user-${randomUUID()}`, roles: [], scopes: [], method: 'jwt', ...p });

let server: RedisServer;
let redis: StoreClient;
const logs = captureLogs();
const logger = createLogger('info', logs.stream);

beforeAll(async () => {
  server = await startRedis();
  redis = createRedis({ url: server.url, keyPrefix: 'test-revocation:', connectTimeout: 1000, commandTimeout: 500 }, logger);
  await waitForRedis(redis);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

const stores: Array<[string, () => RevocationStore]> = [
  ['redis', () => createRedisRevocationStore(redis, { clockSkewSeconds: 30 })],
  ['memory', () => createMemoryRevocationStore({ clockSkewSeconds: 30 })],
];

describe.each(stores)('%s revocation store', (_name, make) => {
  it('revokes one token by jti and no other', async () => {
    const store = make();
    const jti = randomUUID();
    await store.revokeToken(jti, now() + 600);
    expect(await store.isRevoked(principal({ tokenId: jti }))).toBe(true);
    expect(await store.isRevoked(principal({ tokenId: randomUUID() }))).toBe(false);
  });

  it('revokes the tokens of a subject issued at or before the watermark', async () => {
    const store = make();
    const subject = `alice-${randomUUID()}`;
    const t = now();
    await store.revokeSubject(subject, t);
    expect(await store.isRevoked(principal({ subject, issuedAt: t - 100 }))).toBe(true);
    expect(await store.isRevoked(principal({ subject, issuedAt: t }))).toBe(true);
    expect(await store.isRevoked(principal({ subject, issuedAt: t + 1 }))).toBe(false);
    // Without iat there is nothing to compare: only a jti could revoke such a token.
    expect(await store.isRevoked(principal({ subject }))).toBe(false);
    expect(await store.isRevoked(principal({ subject: `bob-${randomUUID()}`, issuedAt: t - 100 }))).toBe(false);
  });

  it('never lowers a subject watermark', async () => {
    const store = make();
    const subject = `carol-${randomUUID()}`;
    const t = now();
    await store.revokeSubject(subject, t);
    await store.revokeSubject(subject, t - 1000);
    expect(await store.isRevoked(principal({ subject, issuedAt: t - 10 }))).toBe(true);
  });

  it('drops a revocation whose token expired past the clock skew', async () => {
    const store = make();
    const jti = randomUUID();
    await store.revokeToken(jti, now() - 60);
    expect(await store.isRevoked(principal({ tokenId: jti }))).toBe(false);
  });
});

describe('expiry of revocation entries', () => {
  it('memory: a jti entry lives until exp plus the clock skew (fake clock)', async () => {
    let clock = 1_000_000_000_000;
    const store = createMemoryRevocationStore({ clockSkewSeconds: 30, subjectTtlSeconds: 3600, now: () => clock });
    const exp = clock / 1000 + 60;
    await store.revokeToken('t1', exp);
    await store.revokeSubject('dave', clock / 1000);
    clock += (60 + 29) * 1000;
    expect(await store.isRevoked(principal({ tokenId: 't1' }))).toBe(true);
    clock += 2000;
    expect(await store.isRevoked(principal({ tokenId: 't1' }))).toBe(false);
    expect(await store.isRevoked(principal({ subject: 'dave', issuedAt: 1_000_000_000 - 5 }))).toBe(true);
    clock += 3600 * 1000;
    expect(await store.isRevoked(principal({ subject: 'dave', issuedAt: 1_000_000_000 - 5 }))).toBe(false);
  });

  it('redis: the jti key expires at exp plus the clock skew, and then is gone', async () => {
    const store = createRedisRevocationStore(redis, { clockSkewSeconds: 30 });
    const jti = randomUUID();
    const exp = now() + 600;
    await store.revokeToken(jti, exp);
    expect(await redis.expiretime(revocationKeys.token(jti))).toBe(exp + 30);

    const brief = createRedisRevocationStore(redis, { clockSkewSeconds: 0 });
    const short = randomUUID();
    await brief.revokeToken(short, now() + 1);
    expect(await brief.isRevoked(principal({ tokenId: short }))).toBe(true);
    const deadline = Date.now() + 5000;
    while ((await brief.isRevoked(principal({ tokenId: short }))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await brief.isRevoked(principal({ tokenId: short }))).toBe(false);
  });

  it('redis: subject watermarks have no TTL unless configured', async () => {
    const forever = createRedisRevocationStore(redis);
    await forever.revokeSubject('erin', 1000);
    expect(await redis.ttl(revocationKeys.subject('erin'))).toBe(-1);
    const bounded = createRedisRevocationStore(redis, { clockSkewSeconds: 30, subjectTtlSeconds: 3600 });
    const t = now();
    await bounded.revokeSubject('frank', t);
    expect(await redis.expiretime(revocationKeys.subject('frank'))).toBe(t + 3600 + 30);
  });

  it('redis: with replicas to wait for, says whether one had the write in time (a server without replicas: never)', async () => {
    expect(await createRedisRevocationStore(redis).revokeToken('no-wait', now() + 60)).toEqual({});
    const waiting = createRedisRevocationStore(redis, { replicas: { count: 1, timeoutMs: 50 } });
    const started = Date.now();
    expect(await waiting.revokeToken('waits', now() + 60)).toEqual({ replicated: false });
    expect(await waiting.revokeSubject('grace', now())).toEqual({ replicated: false });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    // Stored all the same.
    expect(await waiting.isRevoked(principal({ tokenId: 'waits' }))).toBe(true);
  });
});

describe('createRevocationCheck', () => {
  it('refuses a revoked token with SIDECAR_TOKEN_REVOKED and lets others pass', async () => {
    const store = createRedisRevocationStore(redis);
    const check = createRevocationCheck(store, { failMode: 'closed', logger });
    const jti = randomUUID();
    await store.revokeToken(jti, now() + 600);
    await expect(check(principal({ tokenId: jti }))).rejects.toMatchObject({ code: 'SIDECAR_TOKEN_REVOKED', status: 401 });
    await expect(check(principal({ tokenId: randomUUID(), issuedAt: now() }))).resolves.toBeUndefined();
  });
});

/** POSTs to the revocation admin API in a real HTTP server. */
async function startAdmin(store: RevocationStore, authorize: (req: IncomingMessage) => Promise<string | undefined> = async () => undefined) {
  const audit = createMemoryAudit();
  const srv = await startServer(createRevocationAdmin({ store, adminToken: ADMIN_TOKEN, authorize, audit }));
  const post = async (body: unknown, headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` }, method = 'POST') => {
    const res = await fetch(`${srv.url}/revoke`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: method === 'GET' ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { error?: { code: string }; revoked?: Record<string, unknown> } };
  };
  return { ...srv, audit, post };
}

describe('revocation admin API', () => {
  it('revokes with the admin token and audits it', async () => {
    const store = createMemoryRevocationStore();
    const admin = await startAdmin(store);
    try {
      const exp = now() + 600;
      const res = await admin.post({ jti: 'tok-1', exp });
      expect(res).toEqual({ status: 200, body: { revoked: { jti: 'tok-1', exp } } });
      expect(await store.isRevoked(principal({ tokenId: 'tok-1' }))).toBe(true);
      expect(admin.audit.events).toEqual([
        { event_type: 'sensitive_operation', user_id: 'admin-token', operation: 'revoke_token', details: { jti: 'tok-1', exp } },
      ]);
    } finally {
      await admin.close();
    }
  });

  it('revokes a subject as an authorized principal, before defaulting to now', async () => {
    const store = createMemoryRevocationStore();
    const admin = await startAdmin(store, async (req) => (req.headers.authorization === 'Bearer ops-jwt' ? 'ops-alice' : undefined));
    try {
      const t = now();
      const res = await admin.post({ sub: 'mallory' }, { authorization: 'Bearer ops-jwt' });
      expect(res.status).toBe(200);
      expect(res.body.revoked?.before).toBeGreaterThanOrEqual(t);
      expect(await store.isRevoked(principal({ subject: 'mallory', issuedAt: t }))).toBe(true);
      expect(admin.audit.events[0]).toMatchObject({ user_id: 'ops-alice', operation: 'revoke_subject', details: { sub: 'mallory' } });
    } finally {
      await admin.close();
    }
  });

  it('answers 401, 403, 400 and 404 with stable codes', async () => {
    const admin = await startAdmin(createMemoryRevocationStore(), async (req) => {
      if (req.headers.authorization === 'Bearer forged') throw new SidecarError('SIDECAR_TOKEN_SIGNATURE_INVALID');
      return undefined;
    });
    try {
      const exp = now() + 600;
      const code = async (...args: Parameters<typeof admin.post>) => {
        const r = await admin.post(...args);
        return [r.status, r.body.error?.code];
      };
      expect(await code({ jti: 'x', exp }, {})).toEqual([401, 'SIDECAR_CREDENTIALS_MISSING']);
      expect(await code({ jti: 'x', exp }, { authorization: 'Bearer forged' })).toEqual([401, 'SIDECAR_TOKEN_SIGNATURE_INVALID']);
      expect(await code({ jti: 'x', exp }, { authorization: `Bearer ${'b'.repeat(40)}` })).toEqual([403, 'SIDECAR_FORBIDDEN']);
      expect(await code('{"jti": ')).toEqual([400, 'SIDECAR_BAD_ADMIN_REQUEST']);
      expect(await code({ jti: 'x', exp, sub: 'y' })).toEqual([400, 'SIDECAR_BAD_ADMIN_REQUEST']);
      expect(await code({ jti: 'x' })).toEqual([400, 'SIDECAR_BAD_ADMIN_REQUEST']);
      expect(await code({ jti: 'x', exp: Date.now() })).toEqual([400, 'SIDECAR_BAD_ADMIN_REQUEST']);
      expect(await code({ sub: 'y', extra: 1 })).toEqual([400, 'SIDECAR_BAD_ADMIN_REQUEST']);
      expect(await code({}, undefined, 'GET')).toEqual([404, 'SIDECAR_NOT_FOUND']);
      expect(admin.audit.events).toEqual([]);
    } finally {
      await admin.close();
    }
  });
});

/** The revoke command in a child process, as the CLI would run it. */
async function runRevokeCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  // The real CLI: its usage errors (an unknown option) exit 2 as revoke's own bad input does.
  const child = spawn(process.execPath, [CLI, 'revoke', ...args], {
    cwd: ROOT,
    env: { ...process.env, SIDECAR_ADMIN_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('agent-sidecar revoke', () => {
  it('revokes through the admin API of a sidecar with a memory store', async () => {
    const store = createMemoryRevocationStore();
    const admin = await startAdmin(store);
    try {
      const exp = now() + 600;
      const ok = await runRevokeCli(['--jti', 'cli-1', '--exp', String(exp), '--admin-url', admin.url], { SIDECAR_ADMIN_TOKEN: ADMIN_TOKEN });
      expect(ok.code).toBe(0);
      expect(await store.isRevoked(principal({ tokenId: 'cli-1' }))).toBe(true);

      const refused = await runRevokeCli(['--sub', 'x', '--admin-url', admin.url, '--token', 'c'.repeat(40)]);
      expect(refused.code).toBe(1);
      expect(refused.output).toContain('[SIDECAR_FORBIDDEN]');
    } finally {
      await admin.close();
    }
  });

  it('writes straight into Redis with --redis', async () => {
    const t = now();
    const res = await runRevokeCli(['--sub', 'grace', '--before', String(t), '--redis', server.url, '--key-prefix', 'test-revocation:']);
    expect(res.code).toBe(0);
    expect(await createRedisRevocationStore(redis).isRevoked(principal({ subject: 'grace', issuedAt: t }))).toBe(true);
  });

  it('exits 2 on bad input and 1 when the admin API is unreachable', async () => {
    const noExp = await runRevokeCli(['--jti', 'x', '--token', ADMIN_TOKEN]);
    expect(noExp.code).toBe(2);
    expect(noExp.output).toContain('[SIDECAR_BAD_ADMIN_REQUEST]');
    expect((await runRevokeCli(['--sub', 'x', '--before', 'yesterday', '--token', ADMIN_TOKEN])).code).toBe(2);
    expect((await runRevokeCli(['--sub', 'x'])).code).toBe(2);
    expect((await runRevokeCli(['--sub', 'x', '--bogus'])).code).toBe(2);
    const down = await runRevokeCli(['--sub', 'x', '--token', ADMIN_TOKEN, '--admin-url', 'http://127.0.0.1:1']);
    expect(down.code).toBe(1);
    expect(down.output).toContain('[SIDECAR_ADMIN_UNREACHABLE]');
  });
});

describe('Redis outage', () => {
  it('fails closed by default, open when configured, and recovers when Redis is back', async () => {
    const store = createRedisRevocationStore(redis);
    const audit = createMemoryAudit();
    const closed = createRevocationCheck(store, { failMode: 'closed', logger });
    const open = createRevocationCheck(store, { failMode: 'open', logger, audit });
    const admin = await startAdmin(store);
    const p = principal({ tokenId: randomUUID(), issuedAt: now() });
    try {
      await server.stop();
      for (let i = 0; i < 3; i++) await expect(closed(p)).rejects.toMatchObject({ code: 'SIDECAR_STORE_UNAVAILABLE', status: 503 });
      for (let i = 0; i < 3; i++) await expect(open(p)).resolves.toBeUndefined();
      expect(closed.stats.failedClosed).toBe(3);
      expect(open.stats.failedOpen).toBe(3);
      expect(audit.events.map((e) => e.event_type === 'sensitive_operation' && e.operation)).toEqual(Array(3).fill('revocation_check_skipped'));
      // One warning per check and interval, not one per request.
      expect(logs.lines.filter((l) => l.event_type === 'revocation_store_failed')).toHaveLength(2);
      expect((await admin.post({ sub: 'heidi' })).body.error?.code).toBe('SIDECAR_STORE_UNAVAILABLE');
      expect(await redisReadiness(redis).check()).toMatch(/redis/);

      await server.start();
      await waitForRedis(redis, 10_000);
      expect(await redisReadiness(redis).check()).toBeUndefined();
      expect((await admin.post({ sub: p.subject })).status).toBe(200);
      await expect(closed(p)).rejects.toMatchObject({ code: 'SIDECAR_TOKEN_REVOKED' });
      await expect(open(p)).rejects.toMatchObject({ code: 'SIDECAR_TOKEN_REVOKED' });
    } finally {
      await admin.close();
    }
  });
});
