/**
 * The single executable (npm run build:sea; npm test builds it before this suite) as a user
 * gets it: copied alone into an empty directory and started with a PATH whose node is the
 * machine's own (Node 20 on these machines) or none, no node_modules anywhere near. Beside
 * the package's bin on dist/, it must run the subcommands, proxy, authenticate, keep
 * revocations in a real Redis and export traces, metrics and logs to a real OTLP receiver
 * the same way.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../helpers.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../otlp-receiver.ts';
import { startRedis, type RedisServer } from '../redis-server.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const EXECUTABLE = join(REPO, 'dist', `agent-sidecar-${process.platform}-${process.arch}`);
const BIN = join(REPO, 'bin', 'agent-sidecar.js');
const SECRET = 'e2e-executable-secret-0123456789abcdef';
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

let dir: string;
let redis: RedisServer;
let receiver: OtlpReceiver;
let upstream: Awaited<ReturnType<typeof startServer>>;
const seen: Array<Record<string, string | string[] | undefined>> = [];

beforeAll(async () => {
  if (!existsSync(EXECUTABLE)) throw new Error(`${EXECUTABLE} is missing: npm run build:sea builds it (npm test does, before this suite)`);
  dir = mkdtempSync(join(tmpdir(), 'agent-sidecar-executable-'));
  mkdirSync(join(dir, 'alone'));
  copyFileSync(EXECUTABLE, join(dir, 'alone', 'agent-sidecar'));
  [redis, receiver, upstream] = await Promise.all([
    startRedis(),
    startOtlpReceiver(),
    startServer((req, res) => {
      seen.push(req.headers);
      res.end('agent');
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([redis?.close(), receiver?.stop(), upstream?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

interface Target {
  name: string;
  /** The command line before the subcommand. */
  argv: string[];
  /** What the process may see: the executable gets a bare PATH, the bin the test's own Node 24. */
  env: NodeJS.ProcessEnv;
  cwd: () => string;
}

const TARGETS: Target[] = [
  { name: 'the single executable, alone in a directory', argv: [], env: { PATH: '/usr/bin:/bin' }, cwd: () => join(dir, 'alone') },
  { name: 'bin/agent-sidecar.js on dist/', argv: [process.execPath, BIN], env: { PATH: process.env.PATH }, cwd: () => REPO },
];

function command(t: Target): [string, string[]] {
  return t.argv.length === 0 ? [join(dir, 'alone', 'agent-sidecar'), []] : [t.argv[0]!, t.argv.slice(1)];
}

function cli(t: Target, args: string[], env: NodeJS.ProcessEnv = {}) {
  const [cmd, pre] = command(t);
  const r = spawnSync(cmd, [...pre, ...args], { cwd: t.cwd(), env: { HOME: dir, ...t.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.each(TARGETS)('$name', (t) => {
  it('runs the subcommands: version, validate, token, revoke --redis, run; proxies, authenticates and exports telemetry', async () => {
    expect(cli(t, ['version'])).toMatchObject({ status: 0, stdout: `${VERSION}\n` });
    const service = `executable-${t.argv.length === 0 ? 'sea' : 'dist'}`;
    const config = join(dir, `${service}.yaml`);
    writeFileSync(
      config,
      `listen: { address: 127.0.0.1:0 }
admin: { address: 127.0.0.1:0 }
egress: { address: 127.0.0.1:0 }
upstream: { url: ${upstream.url} }
auth:
  jwt: { secret: "\${env:JWT_SECRET}", algorithms: [HS256] }
stores:
  redis: { url: ${redis.url} }
telemetry:
  endpoint: ${receiver.endpoint}
  serviceName: ${service}
  metrics: { exportInterval: 500ms }
  traces: { scheduledDelay: 100ms }
  logs: { scheduledDelay: 100ms }
`,
    );
    const validated = cli(t, ['validate', '--config', config], { JWT_SECRET: SECRET });
    expect(validated.status, validated.stderr).toBe(0);

    const minted = cli(t, ['token', '--sub', 'alice', '--role', 'analyst', '--ttl', '10m'], { JWT_SECRET: SECRET });
    expect(minted.status, minted.stderr).toBe(0);
    const token = minted.stdout.trim();
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string; exp: number };

    const [cmd, pre] = command(t);
    const child = spawn(cmd, [...pre, 'run', '--config', config], {
      cwd: t.cwd(),
      env: { HOME: dir, ...t.env, JWT_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const startup = await startupLine(() => out, child);
      const base = startup.listen;
      const anonymous = await request(`${base}/api/v1/agents`);
      expect(anonymous.statusCode).toBe(401);
      expect(((await anonymous.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_CREDENTIALS_MISSING');

      const allowed = await request(`${base}/api/v1/agents`, { headers: { authorization: `Bearer ${token}` } });
      expect(allowed.statusCode).toBe(200);
      expect(await allowed.body.text()).toBe('agent');
      expect(seen.at(-1)).toMatchObject({ 'x-auth-subject': 'alice', 'x-auth-roles': 'analyst' });

      // The CLI writes the revocation into Redis; the running process reads it from there.
      const revoked = cli(t, ['revoke', '--redis', redis.url, '--jti', claims.jti, '--exp', String(claims.exp)]);
      expect(revoked.status, revoked.stderr).toBe(0);
      const refused = await request(`${base}/api/v1/agents`, { headers: { authorization: `Bearer ${token}` } });
      expect(refused.statusCode).toBe(401);
      expect(((await refused.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_TOKEN_REVOKED');

      const ours = <T extends { resource: Record<string, unknown> }>(items: T[]) => items.filter((i) => i.resource['service.name'] === service);
      const spans = await receiver.waitFor(receiver.spans, (s) => ours(s).filter((x) => x.kindName === 'SERVER').length >= 3, 15_000);
      expect(
        ours(spans)
          .filter((s) => s.kindName === 'SERVER')
          .map((s) => s.attributes['http.route']),
      ).toEqual(['/api/v1/agents', '/api/v1/agents', '/api/v1/agents']);
      const logs = await receiver.waitFor(receiver.logs, (l) => ours(l).filter((r) => r.attributes.event_type === 'access').length >= 3, 15_000);
      expect(
        ours(logs)
          .filter((r) => r.attributes.event_type === 'access')
          .map((r) => r.attributes.status_code),
      ).toEqual([401, 200, 401]);
      await receiver.waitFor(receiver.metrics, (m) => ours(m).some((x) => x.name === 'agent_requests'), 15_000);
    } finally {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code, out.slice(-2000)).toBe(0);
    }
  });
});

async function startupLine(output: () => string, child: ReturnType<typeof spawn>): Promise<{ listen: string }> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const line = output()
      .split('\n')
      .find((l) => l.includes('"event_type":"startup"'));
    if (line !== undefined) return JSON.parse(line) as { listen: string };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the sidecar did not start:\n${output()}`);
}
