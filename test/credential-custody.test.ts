import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { KEY_PLACEHOLDER } from '../src/egress/index.ts';
import { expectFailure, runCli } from './cli-run.ts';
import { CLEAN_RUN_ENV, freePort, spawnCli, waitForStartup } from './helpers.ts';
import { startFakeProvider, type FakeProvider } from './fake-provider.ts';

const AGENT = fileURLToPath(new URL('./fixtures/egress/keyless-agent.mjs', import.meta.url));
// Keys the agent would hold without custody: what a leak of its environment gives away.
const LEAKABLE = { ANTHROPIC_API_KEY: 'sk-ant-agent-own', ANTHROPIC_AUTH_TOKEN: 'sk-ant-oat-agent-own', OPENAI_API_KEY: 'sk-proj-agent-own' };

let provider: FakeProvider;
let dir: string;
let keyFile: string;
let config: string;

const lines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);

// Whole seconds, so that a rewrite can put back exactly the same mtime.
const MTIME = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);

/** Replaces the key file as a deployment tool does: a new file renamed over the old one. */
function replaceKey(key: string): void {
  const tmp = `${keyFile}.tmp`;
  writeFileSync(tmp, `${key}\n`);
  utimesSync(tmp, MTIME, MTIME);
  renameSync(tmp, keyFile);
}

beforeAll(async () => {
  provider = await startFakeProvider();
  dir = mkdtempSync(join(os.tmpdir(), 'credential-custody-'));
  keyFile = join(dir, 'anthropic-key');
  replaceKey('sk-ant-sidecar-1');
  config = join(dir, 'sidecar.yaml');
  writeFileSync(
    config,
    [
      'listen: { address: 127.0.0.1:0 }',
      'admin: { address: 127.0.0.1:0 }',
      'telemetry: { enabled: false }',
      'egress:',
      '  address: 127.0.0.1:0',
      '  allowHttp: true',
      '  providers:',
      `    anthropic: { origin: "${provider.url}", credential: { file: "${keyFile}" } }`,
      `    openai: { origin: "${provider.url}", credential: { env: SIDECAR_OPENAI_KEY } }`,
    ].join('\n'),
  );
});

afterAll(async () => {
  await provider?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('credential custody with run -- <command>', () => {
  it('the agent holds no key while the provider gets the sidecar’s; the key file is reloaded on change and on SIGHUP', async () => {
    const port = await freePort();
    const proc = spawnCli(['run', '--config', config, '--agent-port', String(port), '--', process.execPath, AGENT], {
      ...CLEAN_RUN_ENV,
      ...LEAKABLE,
      SIDECAR_OPENAI_KEY: 'sk-proj-sidecar',
    });
    try {
      const { listen } = await waitForStartup(proc);
      await expect.poll(() => lines(proc.stdout()).find((l) => l.agent !== undefined), { timeout: 15_000 }).toBeDefined();
      const agent = lines(proc.stdout()).find((l) => l.agent !== undefined)!.agent as { pid: number; env: Record<string, string> };

      // What the agent process holds: placeholders, and no variable with a key in it.
      expect(agent.env.ANTHROPIC_API_KEY).toBe(KEY_PLACEHOLDER);
      expect(agent.env.OPENAI_API_KEY).toBe(KEY_PLACEHOLDER);
      expect(agent.env).not.toHaveProperty('ANTHROPIC_AUTH_TOKEN');
      expect(agent.env).not.toHaveProperty('SIDECAR_OPENAI_KEY');
      const keys = /sk-ant-sidecar|sk-proj-sidecar|agent-own/;
      expect(Object.values(agent.env).filter((v) => keys.test(v))).toEqual([]);
      // The environment block the kernel gave it, not only what Node shows.
      const environ = `/proc/${agent.pid}/environ`;
      if (existsSync(environ)) expect(readFileSync(environ, 'latin1')).not.toMatch(keys);

      const call = async () => {
        const res = await request(`${listen}/`);
        expect(await res.body.text()).toBe('called');
        const [a, o] = provider.seen.slice(-2).map((s) => s.headers);
        return { anthropic: [a!['x-api-key'], a!.authorization], openai: [o!['x-api-key'], o!.authorization] };
      };
      expect(await call()).toEqual({ anthropic: ['sk-ant-sidecar-1', undefined], openai: [undefined, 'Bearer sk-proj-sidecar'] });

      // A new file: picked up by the file watch, no signal needed.
      replaceKey('sk-ant-sidecar-2');
      await expect.poll(async () => (await call()).anthropic[0], { timeout: 5000, interval: 200 }).toBe('sk-ant-sidecar-2');

      // Rewritten in place with the same size and mtime, which the watch cannot tell from no
      // change: the file still seen after a poll or two is the old one, and SIGHUP reads it.
      writeFileSync(keyFile, 'sk-ant-sidecar-3\n');
      utimesSync(keyFile, MTIME, MTIME);
      await new Promise((r) => setTimeout(r, 1500));
      expect((await call()).anthropic[0]).toBe('sk-ant-sidecar-2');
      proc.child.kill('SIGHUP');
      await expect.poll(async () => (await call()).anthropic[0], { timeout: 5000, interval: 200 }).toBe('sk-ant-sidecar-3');

      const out = lines(proc.stdout());
      const started = out.find((l) => l.event_type === 'agent_start')!;
      expect(started.env).toEqual(
        expect.arrayContaining([
          `ANTHROPIC_API_KEY=${KEY_PLACEHOLDER} (the sidecar holds the anthropic key)`,
          'ANTHROPIC_AUTH_TOKEN removed (the sidecar holds the anthropic key)',
          'SIDECAR_OPENAI_KEY removed (the sidecar holds the openai key)',
        ]),
      );
      expect(out.find((l) => l.event_type === 'startup')!.egress).toMatch(/credential from file .*anthropic-key.*credential from env SIDECAR_OPENAI_KEY/);
      expect(proc.output()).not.toMatch(/sk-ant-sidecar|sk-proj-sidecar|agent-own/);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('refuses to start when the key file or variable is missing, naming the setting', async () => {
    const noVariable = await runCli(['run', '--config', config]);
    expectFailure(noVariable, 'SIDECAR_CREDENTIAL_UNAVAILABLE');
    expect(noVariable.stderr).toContain('egress.providers.openai.credential');
    const gone = join(dir, 'gone.yaml');
    writeFileSync(gone, readFileSync(config, 'utf8').replace(keyFile, join(dir, 'no-such-key')));
    const r = await runCli(['run', '--config', gone], { SIDECAR_OPENAI_KEY: 'sk-proj-sidecar' });
    expectFailure(r, 'SIDECAR_CREDENTIAL_UNAVAILABLE');
    expect(r.stderr).toContain('egress.providers.anthropic.credential');
    // validate runs what run runs.
    expectFailure(await runCli(['validate', '--config', gone], { SIDECAR_OPENAI_KEY: 'sk-proj-sidecar' }), 'SIDECAR_CREDENTIAL_UNAVAILABLE');
  });
});
