import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/principal.ts';
import type { SidecarError } from '../src/errors/index.ts';
import { createLogger } from '../src/log/index.ts';
import { createPolicyHolder, type Policy } from '../src/policy/index.ts';
import { captureLogs } from './helpers.ts';

const user: Principal = { subject: 'u-1', roles: ['user'], scopes: [], method: 'jwt' };

const policyYaml = (userPermissions: string[]) => `
roles:
  admin: [view:agent, view:conversation]
  user: [${userPermissions.join(', ')}]
routes:
  - path: /api/v1/agents
    methods: { GET: view:agent }
  - path: /api/v1/conversations
    methods: { GET: view:conversation }
`;

const dir = mkdtempSync(join(tmpdir(), 'policy-reload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Generous: the watcher polls, and a loaded CI machine can delay a poll by seconds.
async function until(condition: () => boolean, timeoutMs = 12_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Requests keep deciding while the file changes: none may throw or see a half-built policy. */
function decideLoop(current: () => Policy) {
  let running = true;
  let decisions = 0;
  const failures: unknown[] = [];
  const done = (async () => {
    while (running) {
      for (let i = 0; i < 200; i++) {
        try {
          const policy = current();
          const a = policy.decide('GET', '/api/v1/conversations', user);
          const b = policy.decide('GET', '/api/v1/agents', user);
          if (!a.allowed || (b.allowed ? b.code !== undefined : b.code !== 'SIDECAR_FORBIDDEN')) failures.push({ a, b });
          decisions += 2;
        } catch (err) {
          failures.push(err);
        }
      }
      await tick();
    }
  })();
  return {
    failures,
    count: () => decisions,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

describe('policy reload', () => {
  it('picks up an edited file, refuses a broken one and keeps serving the last good policy', async () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, policyYaml(['view:conversation']));
    const logs = captureLogs();
    const reloaded: Policy[] = [];
    const holder = createPolicyHolder({ file, logger: createLogger('info', logs.stream), onReload: (p) => reloaded.push(p) });
    const loop = decideLoop(holder.current);
    try {
      const before = holder.current();
      expect(before.decide('GET', '/api/v1/agents', user).code).toBe('SIDECAR_FORBIDDEN');

      // Grant view:agent in place.
      writeFileSync(file, policyYaml(['view:conversation', 'view:agent']));
      await until(() => holder.current().decide('GET', '/api/v1/agents', user).allowed);
      expect(reloaded).toHaveLength(1);
      // An in-flight request that read the old object still sees the old answer.
      expect(before.decide('GET', '/api/v1/agents', user).allowed).toBe(false);

      // A broken file: logged with its code, the running policy stays.
      const good = holder.current();
      writeFileSync(file, policyYaml(['view:conversation']).replace('methods: { GET: view:agent }', 'methods: { GET: [view:agent] }'));
      await until(() => logs.lines.some((l) => l.error_type === 'SIDECAR_POLICY_INVALID'));
      const error = logs.lines.find((l) => l.error_type === 'SIDECAR_POLICY_INVALID')!;
      expect(error).toMatchObject({ level: 'error', event_type: 'policy_reload', file });
      expect(String(error.error)).toContain('routes[0] (/api/v1/agents).methods.GET');
      expect(holder.current()).toBe(good);
      expect(holder.reload()).toBe(false);
      expect(holder.current().decide('GET', '/api/v1/agents', user).allowed).toBe(true);

      // An editor that saves by renaming a new file over the old one: revoke view:agent.
      const tmp = join(dir, '.policy.yaml.swp');
      writeFileSync(tmp, policyYaml(['view:conversation']));
      renameSync(tmp, file);
      await until(() => !holder.current().decide('GET', '/api/v1/agents', user).allowed);
      expect(reloaded).toHaveLength(2);
    } finally {
      await loop.stop();
      holder.close();
      holder.close();
    }
    expect(loop.failures).toEqual([]);
    expect(loop.count()).toBeGreaterThan(1000);
  }, 40_000);

  it('reload() is what SIGHUP calls: it applies the file at once', () => {
    const file = join(dir, 'sighup.yaml');
    writeFileSync(file, policyYaml([]));
    const holder = createPolicyHolder({ file, logger: createLogger('silent') });
    try {
      expect(holder.current().decide('GET', '/api/v1/conversations', user).allowed).toBe(false);
      writeFileSync(file, policyYaml(['view:conversation']));
      expect(holder.reload()).toBe(true);
      expect(holder.current().decide('GET', '/api/v1/conversations', user).allowed).toBe(true);
    } finally {
      holder.close();
    }
  });

  it('refuses to start on a broken file, and serves the built-in default without one', () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, 'roles: {}\nroutes:\n  - path: /a\n');
    let code: string | undefined;
    try {
      createPolicyHolder({ file, logger: createLogger('silent') });
    } catch (err) {
      code = (err as SidecarError).code;
    }
    expect(code).toBe('SIDECAR_POLICY_INVALID');

    const holder = createPolicyHolder({ file: undefined, logger: createLogger('silent') });
    expect(holder.current().source).toBe('built-in default policy');
    expect(holder.reload()).toBe(true);
    holder.close();
  });

  it('logs the warnings of a policy it loads', () => {
    const file = join(dir, 'warn.yaml');
    writeFileSync(file, 'roles: { user: [read] }\nroutes:\n  - path: /a\n    methods: { GET: read, DELETE: purge }\n');
    const logs = captureLogs();
    createPolicyHolder({ file, logger: createLogger('info', logs.stream) }).close();
    expect(logs.lines.filter((l) => l.level === 'warn' && String(l.message).includes('purge'))).toHaveLength(1);
  });
});
