/**
 * The stores on Redis Cluster, all real: three primaries built with redis-cli. The Sentinel
 * failover under traffic through three sidecar processes is in test/e2e/redis-failover.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/index.ts';
import { createRedisBudgetStore } from '../src/egress/index.ts';
import { createLogger } from '../src/log/index.ts';
import { createRedisRateLimitStore } from '../src/ratelimit/redis.ts';
import { createRedisRevocationStore } from '../src/revocation/redis.ts';
import { createRedis, isCluster, scanKeys, waitForRedis, type RedisStoreConfig, type StoreClient } from '../src/stores/index.ts';
import { startMessagesProvider } from './fake-provider.ts';
import { spawnCli, startServer, startSidecar } from './helpers.ts';
import { cli, startCluster, type RedisCluster } from './redis-ha.ts';

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

  it('the CLI works on the cluster through a sidecar configuration: keys create and list, revoke', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redis-cluster-cli-'));
    try {
      const config = join(dir, 'sidecar.yaml');
      writeFileSync(config, stringify({ stores: { redis: { cluster: { nodes: cluster.nodes.slice(1) }, keyPrefix: 'ha-cli:' } } }));
      const run = async (args: string[]) => {
        const proc = spawnCli(args, { SIDECAR_CONFIG: '' });
        return { code: await proc.exited, stdout: proc.stdout(), stderr: proc.stderr() };
      };
      const made = await Promise.all(['ops-1', 'ops-2', 'ops-3'].map((sub) => run(['keys', 'create', '--config', config, '--sub', sub, '--role', 'analyst'])));
      expect(made.map((m) => m.code)).toEqual([0, 0, 0]);
      const listed = await run(['keys', 'list', '--config', config, '--json']);
      expect(listed.code).toBe(0);
      expect(
        listed.stdout
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { subject: string }).subject)
          .sort(),
      ).toEqual(['ops-1', 'ops-2', 'ops-3']);
      const exp = Math.floor(Date.now() / 1000) + 600;
      const revoked = await run(['revoke', '--config', config, '--jti', 'cli-1', '--exp', String(exp)]);
      expect(revoked).toMatchObject({ code: 0, stdout: expect.stringContaining('revoked token cli-1') });
      const client = createRedis(storeConfig({ cluster: { nodes: cluster.nodes } }, 'ha-cli:'), quiet());
      try {
        await waitForRedis(client, 10_000);
        expect(await createRedisRevocationStore(client).isRevoked(principal({ tokenId: 'cli-1' }))).toBe(true);
      } finally {
        client.disconnect();
      }
      // A configuration without stores.redis is bad input.
      writeFileSync(config, 'stores: {}\n');
      const none = await run(['revoke', '--config', config, '--jti', 'cli-2', '--exp', String(exp)]);
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/has no stores\.redis/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a sidecar on the cluster: ready, and its budget counts', async () => {
    const provider = await startMessagesProvider({ input: 1000, output: 1000 });
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
