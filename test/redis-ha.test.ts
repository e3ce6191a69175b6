/**
 * The stores on highly available Redis, all real: a Redis Cluster of three primaries, and a
 * primary with a replica behind three Sentinels whose primary is killed under traffic
 * through three sidecars.
 */
import { Writable } from 'node:stream';
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/index.ts';
import { issueToken } from '../src/auth/issuer.ts';
import { createRedisBudgetStore } from '../src/egress/index.ts';
import { createLogger } from '../src/log/index.ts';
import { createRedisRateLimitStore } from '../src/ratelimit/redis.ts';
import { createRedisRevocationStore } from '../src/revocation/redis.ts';
import { createRedis, isCluster, scanKeys, waitForRedis, type RedisStoreConfig, type StoreClient } from '../src/stores/index.ts';
import { startServer, startSidecar } from './helpers.ts';
import { cli, startCluster, startSentinelSet, type RedisCluster, type SentinelSet } from './redis-ha.ts';

const SECRET = 's'.repeat(48);
const ADMIN_TOKEN = 'a'.repeat(40);
const quiet = () => createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
const storeConfig = (redis: Record<string, unknown>, keyPrefix = 'ha:'): RedisStoreConfig =>
  ({ keyPrefix, connectTimeout: 2000, commandTimeout: 1000, ...redis }) as RedisStoreConfig;
const principal = (p: Partial<Principal>): Principal => ({ subject: 'u', roles: [], scopes: [], method: 'jwt', ...p }) as Principal;

describe('Redis Cluster', () => {
  let cluster: RedisCluster;
  let client: StoreClient;
  beforeAll(async () => {
    cluster = await startCluster();
    client = createRedis(storeConfig({ cluster: { nodes: cluster.nodes.slice(0, 1) } }), quiet());
    await waitForRedis(client, 10_000);
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.close();
  });

  it('every store works across slots: a revocation check reads two slots, a budget script writes several keys of one slot', async () => {
    expect(isCluster(client)).toBe(true);
    const port = Number(new URL(cluster.nodes[0]!).port);
    // The two keys a revocation check reads live in different slots (MGET would be refused).
    expect(cli(port, 'CLUSTER', 'KEYSLOT', 'ha:revoked:jti:t-1').trim()).not.toBe(cli(port, 'CLUSTER', 'KEYSLOT', 'ha:revoked:sub:alice').trim());
    const revocations = createRedisRevocationStore(client);
    const exp = Math.floor(Date.now() / 1000) + 600;
    await revocations.revokeToken('t-1', exp);
    await revocations.revokeSubject('alice', Math.floor(Date.now() / 1000) + 1);
    expect(await revocations.isRevoked(principal({ subject: 'bob', tokenId: 't-1', issuedAt: exp - 600 }))).toBe(true);
    expect(await revocations.isRevoked(principal({ subject: 'alice', tokenId: 't-2', issuedAt: exp - 600 }))).toBe(true);
    expect(await revocations.isRevoked(principal({ subject: 'bob', tokenId: 't-2', issuedAt: exp - 600 }))).toBe(false);

    const limits = createRedisRateLimitStore(client);
    const g = { emissionMs: 1000, burst: 2 };
    expect((await Promise.all([1, 2, 3].map(() => limits.take('k', g)))).map((r) => r.allowed).sort()).toEqual([false, true, true]);

    // A call's budgets: all of one agent, one hash tag, so one script may touch them all.
    const budgets = createRedisBudgetStore(client);
    const entries = ['all:month:2026-12', 'model:claude-*:day:2026-12-06'].map((rest) => ({ key: `budget:{agent-a}:${rest}`, ttlMs: 60_000, limitUsd: 1 }));
    expect(await budgets.reserve(entries, 0.4)).toMatchObject({ ok: true });
    expect((await budgets.settle(entries, 0.4, 0.25)).map((t) => t.spent)).toEqual([0.25, 0.25]);

    // SCAN walks every primary: keys spread over the three are all found.
    for (let i = 0; i < 30; i++) await client.set(`scan:${i}`, '1');
    const found: string[] = [];
    for await (const key of scanKeys(client, 'scan:*')) found.push(key);
    expect(found.length).toBe(30);
    const owners = new Set(cluster.nodes.map((n) => Number(new URL(n).port)).filter((p) => Number(cli(p, 'DBSIZE').trim()) > 0));
    expect(owners.size).toBe(3);
  });

  it('a sidecar on the cluster: ready, and its budget counts', async () => {
    const provider = await startServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            type: 'message',
            model: 'claude-sonnet-4-6',
            content: [],
            stop_reason: 'end_turn',
            usage: { input_tokens: 1000, output_tokens: 1000 },
          }),
        );
      });
    });
    // An agent that answers, so that /readyz says when Redis is connected.
    const agent = await startServer((_req, res) => res.end());
    const s = await startSidecar({
      upstream: { url: agent.url },
      stores: { redis: { cluster: { nodes: cluster.nodes }, keyPrefix: 'ha-sidecar:' } },
      telemetry: { enabled: false, agentType: 'cluster-agent' },
      egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } }, budgets: { limits: [{ window: 'day', usd: 0.01 }] } },
    });
    try {
      await expect.poll(async () => (await request(`${s.adminUrl}/readyz`)).statusCode, { timeout: 10_000 }).toBe(200);
      const call = async () =>
        (
          await request(`${s.egressUrl}/anthropic/v1/messages`, {
            method: 'POST',
            body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [] }),
          })
        ).statusCode;
      expect(await call()).toBe(200);
      await expect.poll(call, { timeout: 5000 }).toBe(429);
    } finally {
      await s.close();
      await provider.close();
      await agent.close();
    }
  }, 30_000);
});

describe('Redis with Sentinel: the primary killed under traffic through three sidecars', () => {
  let set: SentinelSet;
  beforeAll(async () => {
    set = await startSentinelSet();
  });
  afterAll(async () => {
    await set?.close();
  });

  it('no revoked token is ever let through; access, rate limits and budgets continue on the new primary', async () => {
    const upstream = await startServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('{"ok":true}'));
    });
    const provider = await startServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            type: 'message',
            model: 'claude-sonnet-4-6',
            content: [],
            stop_reason: 'end_turn',
            usage: { input_tokens: 100, output_tokens: 100 },
          }),
        );
      });
    });
    const sentinel = { masterName: set.masterName, nodes: set.sentinels };
    const config = {
      upstream: { url: upstream.url },
      auth: { jwt: { secret: SECRET } },
      admin: { token: ADMIN_TOKEN },
      stores: { redis: { sentinel, commandTimeout: '500ms' } },
      rateLimit: { perPrincipal: { requests: 3, per: '1m' } },
      telemetry: { enabled: false, agentType: 'ha-agent' },
      egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } }, budgets: { limits: [{ window: 'day' as const, usd: 100 }] } },
    };
    const sidecars = await Promise.all([0, 1, 2].map(() => startSidecar(config)));
    try {
      for (const s of sidecars) await expect.poll(async () => (await request(`${s.adminUrl}/readyz`)).statusCode, { timeout: 10_000 }).toBe(200);
      const revoked = await issueToken(SECRET, { sub: 'mallory', roles: ['analyst'] }, 600_000);
      // Through the admin API, which answers once a replica has the revocation too (replication is asynchronous).
      const revoke = await request(`${sidecars[0]!.adminUrl}/revoke`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ jti: decodeJwt(revoked).jti, exp: decodeJwt(revoked).exp }),
      });
      expect(await revoke.body.json()).toMatchObject({ replicated: true });

      const get = async (url: string, token: string) =>
        await request(`${url}/api/v1/agents`, { headers: { authorization: `Bearer ${token}` } })
          .then(async (r) => (await r.body.dump(), r.statusCode))
          .catch(() => 0);
      // Traffic: every sidecar, the revoked token and fresh valid ones, every 25 ms.
      const seen: Array<{ at: number; revoked: boolean; status: number }> = [];
      let running = true;
      const traffic = (async () => {
        let n = 0;
        while (running) {
          const valid = await issueToken(SECRET, { sub: `user-${n++}`, roles: ['analyst'] }, 600_000);
          await Promise.all(
            sidecars.flatMap((s) => [
              get(s.url, revoked).then((status) => seen.push({ at: Date.now(), revoked: true, status })),
              get(s.url, valid).then((status) => seen.push({ at: Date.now(), revoked: false, status })),
            ]),
          );
          await new Promise((r) => setTimeout(r, 25));
        }
      })();
      await new Promise((r) => setTimeout(r, 500));
      const oldPrimary = set.primary.port;
      const killedAt = Date.now();
      await set.primary.kill();
      await expect.poll(() => set.currentPrimary(), { timeout: 20_000, interval: 200 }).toBe(set.replica.port);
      const electedAt = Date.now();
      // Back to normal: a valid token (a new subject each time: the rate limit is per subject) passes on every sidecar again.
      let probes = 0;
      await expect
        .poll(
          async () =>
            (
              await Promise.all(sidecars.map(async (s) => get(s.url, await issueToken(SECRET, { sub: `probe-${probes++}`, roles: ['analyst'] }, 60_000))))
            ).every((st) => st === 200),
          { timeout: 20_000, interval: 100 },
        )
        .toBe(true);
      const recoveredAt = Date.now();
      await new Promise((r) => setTimeout(r, 500));
      running = false;
      await traffic;

      const byRevoked = seen.filter((r) => r.revoked);
      expect(byRevoked.filter((r) => r.status === 200)).toEqual([]);
      expect(new Set(byRevoked.map((r) => r.status))).toEqual(new Set([401, 503].filter((st) => byRevoked.some((r) => r.status === st))));
      const before = seen.filter((r) => !r.revoked && r.at < killedAt);
      const after = seen.filter((r) => !r.revoked && r.at > recoveredAt);
      expect(before.length).toBeGreaterThan(0);
      expect(before.every((r) => r.status === 200)).toBe(true);
      expect(after.length).toBeGreaterThan(0);
      expect(after.every((r) => r.status === 200)).toBe(true);
      const refusedDuring = seen.filter((r) => !r.revoked && r.at >= killedAt && r.at <= recoveredAt && r.status !== 200).map((r) => r.status);
      expect(refusedDuring.every((st) => st === 503)).toBe(true);
      process.stdout.write(
        `sentinel failover: primary ${oldPrimary} killed; new primary named after ${electedAt - killedAt} ms; every sidecar serving again after ${recoveredAt - killedAt} ms; ` +
          `${refusedDuring.length} valid requests answered 503 meanwhile (revocation fails closed), ${byRevoked.length} with the revoked token, none let through\n`,
      );

      // Rate limits count on the new primary, shared by the three sidecars.
      const limited = await issueToken(SECRET, { sub: 'limited', roles: ['analyst'] }, 600_000);
      const statuses: number[] = [];
      for (const s of [...sidecars, sidecars[0]!]) statuses.push(await get(s.url, limited));
      expect(statuses).toEqual([200, 200, 200, 429]);
      // A budget reserves and settles on the new primary.
      const call = await request(`${sidecars[1]!.egressUrl}/anthropic/v1/messages`, {
        method: 'POST',
        body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [] }),
      });
      await call.body.dump();
      expect(call.statusCode).toBe(200);
      await expect
        .poll(
          async () =>
            Number(cli(set.replica.port, 'HGET', cli(set.replica.port, 'KEYS', 'agent-sidecar:budget:*').trim().split('\n')[0] ?? '', 'spent').trim()),
          { timeout: 5000 },
        )
        .toBeGreaterThan(0);
      // Nothing crashed.
      for (const s of sidecars) expect((await request(`${s.adminUrl}/healthz`)).statusCode).toBe(200);
    } finally {
      await Promise.all(sidecars.map((s) => s.close()));
      await upstream.close();
      await provider.close();
    }
  }, 90_000);
});
