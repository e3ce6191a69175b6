import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { validateConfig } from '../src/config/index.ts';
import type { Egress } from '../src/egress/index.ts';
import { SidecarError } from '../src/errors/index.ts';
import { startSidecar } from './helpers.ts';
import { startFakeProvider, type FakeProvider } from './fake-provider.ts';

let provider: FakeProvider;
let dir: string;

beforeAll(async () => {
  provider = await startFakeProvider();
  dir = mkdtempSync(join(os.tmpdir(), 'egress-credentials-'));
});

afterAll(async () => {
  await provider?.close();
  rmSync(dir, { recursive: true, force: true });
});

// Every spelling of a key an agent may send: Anthropic's, a bearer token, Azure OpenAI's.
const AGENT_KEYS = { 'x-api-key': 'sk-ant-agent', authorization: 'Bearer sk-agent', 'api-key': 'sk-azure-agent' };

const chat = (egressUrl: string, route: string, path: string) =>
  request(`${egressUrl}${route}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...AGENT_KEYS },
    body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
  });

const credentialHeaders = (i = -1) => {
  const h = provider.seen.at(i)!.headers;
  return { 'x-api-key': h['x-api-key'], authorization: h.authorization, 'api-key': h['api-key'] };
};

describe('credential custody on the egress hop', () => {
  it("sends the sidecar's key in each provider's own header and never the agent's, on metered and pass-through calls", async () => {
    const file = join(dir, 'anthropic-key');
    writeFileSync(file, 'sk-ant-sidecar\n');
    process.env.TEST_OPENAI_KEY = 'sk-proj-sidecar';
    const s = await startSidecar({
      egress: {
        allowHttp: true,
        providers: {
          anthropic: { origin: provider.url, credential: { file } },
          openai: { origin: provider.url, credential: { env: 'TEST_OPENAI_KEY' } },
        },
      },
    });
    try {
      expect((await chat(s.egressUrl, '/anthropic', '/v1/messages')).statusCode).toBe(200);
      expect(credentialHeaders()).toEqual({ 'x-api-key': 'sk-ant-sidecar', authorization: undefined, 'api-key': undefined });
      // Unmetered calls (a model list) stream through on another path: the same custody.
      await request(`${s.egressUrl}/anthropic/v1/models`, { headers: AGENT_KEYS }).then((r) => r.body.dump());
      expect(credentialHeaders()).toEqual({ 'x-api-key': 'sk-ant-sidecar', authorization: undefined, 'api-key': undefined });

      expect((await chat(s.egressUrl, '/openai', '/v1/chat/completions')).statusCode).toBe(200);
      expect(credentialHeaders()).toEqual({ 'x-api-key': undefined, authorization: 'Bearer sk-proj-sidecar', 'api-key': undefined });

      const startup = s.logs.lines.find((l) => l.event_type === 'startup')!;
      expect(startup.egress).toContain(`(credential from file ${file})`);
      expect(startup.egress).toContain('(credential from env TEST_OPENAI_KEY)');
      expect(JSON.stringify(s.logs.lines)).not.toMatch(/sk-ant-sidecar|sk-proj-sidecar/);
    } finally {
      delete process.env.TEST_OPENAI_KEY;
      await s.close();
    }
  });

  it("passes the agent's own key when no credential is configured", async () => {
    const s = await startSidecar({ egress: { allowHttp: true, providers: { anthropic: { origin: provider.url }, openai: { origin: provider.url } } } });
    try {
      await (await chat(s.egressUrl, '/anthropic', '/v1/messages')).body.dump();
      expect(credentialHeaders()).toEqual(AGENT_KEYS);
    } finally {
      await s.close();
    }
  });

  it('follows a Kubernetes secret volume: a symlink swap is picked up, a broken file keeps the key in force and is logged once', async () => {
    // The kubelet's layout: key -> ..data/key, ..data -> ..<timestamp>, swapped by a rename.
    const volume = join(dir, 'volume');
    const version = (name: string, key: string) => {
      const d = join(volume, name);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'key'), key);
      symlinkSync(name, join(volume, '..data_tmp'));
      renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
    };
    mkdirSync(volume);
    version('..v1', 'sk-ant-one\n');
    symlinkSync('..data/key', join(volume, 'key'));
    const file = join(volume, 'key');
    const s = await startSidecar({ egress: { allowHttp: true, providers: { anthropic: { origin: provider.url, credential: { file } } } } });
    const sentKey = async () => {
      await (await chat(s.egressUrl, '/anthropic', '/v1/messages')).body.dump();
      return credentialHeaders()['x-api-key'];
    };
    try {
      expect(await sentKey()).toBe('sk-ant-one');
      version('..v2', 'sk-ant-two\n');
      await expect.poll(sentKey, { timeout: 5000, interval: 200 }).toBe('sk-ant-two');

      const refused = () => s.logs.lines.filter((l) => l.event_type === 'credential_reload' && l.error_type === 'SIDECAR_CREDENTIAL_UNAVAILABLE');
      version('..v3', '  \n');
      await expect.poll(() => refused().length, { timeout: 5000 }).toBe(1);
      expect(await sentKey()).toBe('sk-ant-two');
      // Still broken, differently, and reloaded twice more (as by SIGHUP): no second line.
      version('..v4', 'two keys\n');
      const { egress } = s.sidecar as typeof s.sidecar & { egress: Egress };
      egress.reloadCredentials();
      egress.reloadCredentials();
      expect(await sentKey()).toBe('sk-ant-two');
      expect(refused()).toHaveLength(1);

      version('..v5', 'sk-ant-three');
      await expect.poll(sentKey, { timeout: 5000, interval: 200 }).toBe('sk-ant-three');
      expect(JSON.stringify(s.logs.lines)).not.toMatch(/sk-ant-(one|two|three)/);
    } finally {
      await s.close();
    }
  });

  it('refuses to start without the key, naming the setting', async () => {
    const missing = join(dir, 'no-such-key');
    const start = (credential: { env?: string; file?: string }) =>
      startSidecar({ egress: { allowHttp: true, providers: { openai: { origin: provider.url, credential } } } });
    for (const credential of [{ file: missing }, { env: 'TEST_NO_SUCH_KEY_VARIABLE' }, { file: dir }]) {
      const err = await start(credential).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SidecarError);
      expect((err as SidecarError).code).toBe('SIDECAR_CREDENTIAL_UNAVAILABLE');
      expect((err as SidecarError).message).toContain('egress.providers.openai.credential');
    }
    const empty = join(dir, 'empty-key');
    writeFileSync(empty, '\n');
    await expect(start({ file: empty })).rejects.toMatchObject({ code: 'SIDECAR_CREDENTIAL_UNAVAILABLE' });
  });

  it('takes exactly one of env or file', () => {
    const cases = [{}, { env: 'A', file: '/k' }, { env: 'not a name' }, { file: '' }, { path: '/k' }];
    for (const credential of cases) {
      let err: unknown;
      try {
        validateConfig({ egress: { providers: { anthropic: { credential } } } });
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(credential)).toMatchObject({ code: 'SIDECAR_CONFIG_INVALID' });
      expect((err as Error).message).toContain('egress.providers.anthropic.credential');
    }
    expect(validateConfig({ egress: { providers: { openai: { credential: { file: '/k' } } } } }).egress.providers.openai.credential).toEqual({ file: '/k' });
  });
});
