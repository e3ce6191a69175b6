/**
 * Redis behind Sentinels, its primary killed under traffic, all real and on loopback: a
 * primary, a replica and three Sentinels (test/redis-ha.ts), three sidecar processes sharing
 * them for revocation, rate limits and LLM budgets, an upstream and a provider. Nothing may
 * let a revoked token through, the stores must work again on the new primary within a stated
 * time, and no sidecar may exit.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../src/auth/issuer.ts';
import { startMessagesProvider } from '../fake-provider.ts';
import { spawnCli, startServer, waitForStartup } from '../helpers.ts';
import { cli, startSentinelSet, type SentinelSet } from '../redis-ha.ts';

const SECRET = 's'.repeat(48);
const ADMIN_TOKEN = 'a'.repeat(40);
const CLEAN_ENV: NodeJS.ProcessEnv = { SIDECAR_CONFIG: '', SIDECAR_LISTEN: '', SIDECAR_UPSTREAM: '', SIDECAR_ADMIN: '', SIDECAR_LOG_LEVEL: '' };
/** Stated bound: every sidecar serves again this long after the primary dies (failure detection 1 s, election, reconnect backoff capped at 2 s). */
const RECOVERY_BOUND_MS = 15_000;

interface Sidecar {
  url: string;
  admin: string;
  egress: string;
  proc: ReturnType<typeof spawnCli>;
}

let set: SentinelSet;
let dir: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'redis-failover-'));
  set = await startSentinelSet();
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await set?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function status(url: string, token: string): Promise<number> {
  try {
    const r = await request(`${url}/api/v1/agents`, { headers: { authorization: `Bearer ${token}` } });
    await r.body.dump();
    return r.statusCode;
  } catch {
    return 0;
  }
}

describe('Redis Sentinel failover under traffic through three sidecar processes', () => {
  it('no revoked token is ever let through; access, rate limits and budgets continue on the new primary; no sidecar exits', async () => {
    const upstream = await startServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('{"ok":true}'));
    });
    const provider = await startMessagesProvider({ input: 100, output: 100 });
    closers.push(upstream.close, provider.close);
    const config = join(dir, 'sidecar.yaml');
    writeFileSync(
      config,
      stringify({
        listen: { address: '127.0.0.1:0' },
        admin: { address: '127.0.0.1:0', token: ADMIN_TOKEN },
        upstream: { url: upstream.url },
        auth: { jwt: { secret: SECRET } },
        stores: { redis: { sentinel: { masterName: set.masterName, nodes: set.sentinels } } },
        rateLimit: { perPrincipal: { requests: 3, per: '1m' } },
        egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } }, budgets: { limits: [{ window: 'day', usd: 100 }] } },
        telemetry: { enabled: false, agentType: 'ha-agent' },
      }),
    );
    const sidecars: Sidecar[] = [];
    for (let i = 0; i < 3; i++) {
      const proc = spawnCli(['run', '--config', config], CLEAN_ENV);
      closers.push(async () => {
        if (proc.child.exitCode === null && proc.child.signalCode === null) {
          proc.child.kill('SIGTERM');
          await once(proc.child, 'exit');
        }
      });
      const info = (await waitForStartup(proc, 20_000)) as { listen: string; admin: string; egress?: string };
      sidecars.push({ url: info.listen, admin: `http://${info.admin}`, egress: /^http:\/\/\S+/.exec(info.egress ?? '')![0], proc });
    }
    for (const s of sidecars) await expect.poll(async () => (await request(`${s.admin}/readyz`)).statusCode, { timeout: 20_000 }).toBe(200);

    const revoked = await issueToken(SECRET, { sub: 'mallory', roles: ['analyst'] }, 600_000);
    // Answered once a replica has it: a failover cannot lose it.
    const revoke = await request(`${sidecars[0]!.admin}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jti: decodeJwt(revoked).jti, exp: decodeJwt(revoked).exp }),
    });
    expect(await revoke.body.json()).toMatchObject({ replicated: true });

    // Traffic: every sidecar, the revoked token and a fresh valid one (a new subject each: the rate limit is per subject), every 25 ms.
    const seen: Array<{ at: number; revoked: boolean; status: number }> = [];
    let running = true;
    let n = 0;
    const traffic = (async () => {
      while (running) {
        const valid = await issueToken(SECRET, { sub: `user-${n++}`, roles: ['analyst'] }, 600_000);
        await Promise.all(
          sidecars.flatMap((s) => [
            status(s.url, revoked).then((st) => seen.push({ at: Date.now(), revoked: true, status: st })),
            status(s.url, valid).then((st) => seen.push({ at: Date.now(), revoked: false, status: st })),
          ]),
        );
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await new Promise((r) => setTimeout(r, 1000));
    const killedAt = Date.now();
    await set.primary.kill();
    await expect.poll(() => set.currentPrimary(), { timeout: 30_000, interval: 100 }).toBe(set.replica.port);
    const electedAt = Date.now();
    let probes = 0;
    await expect
      .poll(
        async () => {
          const probe = await Promise.all(
            sidecars.map(async (s) => status(s.url, await issueToken(SECRET, { sub: `probe-${probes++}`, roles: ['analyst'] }, 60_000))),
          );
          return probe.every((st) => st === 200);
        },
        { timeout: RECOVERY_BOUND_MS, interval: 100 },
      )
      .toBe(true);
    const recoveredAt = Date.now();
    await new Promise((r) => setTimeout(r, 2000));
    running = false;
    await traffic;

    const withRevoked = seen.filter((r) => r.revoked);
    expect(withRevoked.filter((r) => r.status === 200)).toEqual([]);
    expect(withRevoked.every((r) => r.status === 401 || r.status === 503)).toBe(true);
    const valid = seen.filter((r) => !r.revoked);
    expect(valid.filter((r) => r.at < killedAt).every((r) => r.status === 200)).toBe(true);
    const after = valid.filter((r) => r.at > recoveredAt);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((r) => r.status === 200)).toBe(true);
    const during = valid.filter((r) => r.at >= killedAt && r.at <= recoveredAt);
    expect(during.every((r) => r.status === 200 || r.status === 503)).toBe(true);
    expect(recoveredAt - killedAt).toBeLessThan(RECOVERY_BOUND_MS + 30_000);
    process.stdout.write(
      `redis failover: primary killed; Sentinels named the replica after ${electedAt - killedAt} ms; all three sidecars served again after ${recoveredAt - killedAt} ms ` +
        `(${recoveredAt - electedAt} ms after the election); meanwhile ${during.filter((r) => r.status === 503).length} of ${during.length} valid requests answered 503 ` +
        `(revocation fails closed); ${withRevoked.length} requests with the revoked token, none let through\n`,
    );

    // Rate limits count on the new primary, shared by the three sidecars.
    const limited = await issueToken(SECRET, { sub: 'limited', roles: ['analyst'] }, 600_000);
    const statuses: number[] = [];
    for (const s of [...sidecars, sidecars[0]!]) statuses.push(await status(s.url, limited));
    expect(statuses).toEqual([200, 200, 200, 429]);
    // A budget reserves and settles on the new primary.
    const call = await request(`${sidecars[1]!.egress}/anthropic/v1/messages`, {
      method: 'POST',
      body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [] }),
    });
    await call.body.dump();
    expect(call.statusCode).toBe(200);
    const budgetKey = () => cli(set.replica.port, '--scan', '--pattern', 'agent-sidecar:budget:*').trim().split('\n')[0] ?? '';
    await expect.poll(() => Number(cli(set.replica.port, 'HGET', budgetKey(), 'spent').trim()), { timeout: 5000 }).toBeGreaterThan(0);
    // The CLI, given the sidecar's configuration, finds the new primary through the Sentinels too.
    const late = await issueToken(SECRET, { sub: 'late', roles: ['analyst'] }, 600_000);
    const revokeCli = spawnCli(['revoke', '--config', config, '--jti', String(decodeJwt(late).jti), '--exp', String(decodeJwt(late).exp)], CLEAN_ENV);
    expect(await revokeCli.exited, revokeCli.output()).toBe(0);
    expect(revokeCli.stdout()).toContain('revoked token');
    // The old primary is gone and the new one has no replica: the revocation says it is on the primary only.
    expect(revokeCli.stderr()).toContain('stored on the Redis primary only');
    for (const s of sidecars) expect(await status(s.url, late)).toBe(401);
    // The admin API too: stored, answered within the command timeout, and said to be on the primary only.
    const later = await issueToken(SECRET, { sub: 'later', roles: ['analyst'] }, 600_000);
    const unreplicated = await request(`${sidecars[2]!.admin}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jti: decodeJwt(later).jti, exp: decodeJwt(later).exp }),
    });
    expect(unreplicated.statusCode).toBe(200);
    expect(await unreplicated.body.json()).toMatchObject({ replicated: false });
    await expect.poll(() => sidecars[2]!.proc.output()).toContain('"event_type":"revocation_not_replicated"');
    expect(await status(sidecars[0]!.url, later)).toBe(401);
    // No sidecar exited, and each reported the outage and the recovery.
    for (const s of sidecars) {
      expect(s.proc.child.exitCode).toBeNull();
      expect((await request(`${s.admin}/healthz`)).statusCode).toBe(200);
      expect(s.proc.output()).toContain('"event_type":"store_recovered"');
    }
  });
});
