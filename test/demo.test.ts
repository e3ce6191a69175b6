import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../src/demo/main.ts', import.meta.url));

describe('npm run demo', () => {
  const child = spawn(process.execPath, [DEMO], {
    env: { ...process.env, SIDECAR_LISTEN: '127.0.0.1:0', SIDECAR_ADMIN: '127.0.0.1:0', SIDECAR_EGRESS: '127.0.0.1:0', SIDECAR_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));

  afterAll(async () => {
    if (child.exitCode === null) {
      child.kill('SIGINT');
      await once(child, 'exit');
    }
  });

  it('puts the demo agent behind the sidecar with JWT and RBAC on, and prints tokens that work', async () => {
    const deadline = Date.now() + 10_000;
    while (!out.includes('Ctrl-C') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const base = /behind the sidecar \((http:\/\/127\.0\.0\.1:\d+)\)/.exec(out)?.[1];
    expect(base, out).toBeDefined();

    expect(out).toMatch(/analyst GET \/api\/v1\/agents -> 200; user GET \/api\/v1\/agents -> 403 SIDECAR_FORBIDDEN/);
    const token = (role: string) => new RegExp(`^\\s+${role}\\s+(eyJ\\S+)$`, 'm').exec(out)?.[1];
    const anonymous = await request(`${base}/api/v1/agents`);
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();

    const list = await request(`${base}/api/v1/agents`, { headers: { authorization: `Bearer ${token('analyst')}` } });
    expect(list.statusCode).toBe(200);
    expect(((await list.body.json()) as { agents: unknown[] }).agents.length).toBeGreaterThan(0);

    const chat = await request(`${base}/api/v1/chat`, {
      method: 'POST',
      body: '{"message":"hello"}',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token('user')}` },
    });
    expect(chat.headers['content-type']).toBe('text/event-stream');
    const text = await chat.body.text();
    expect(text).toContain('event: token');
    expect(text).toContain('event: done');

    child.kill('SIGINT');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});
