import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { request } from 'undici';
import { loadKeyRing } from '../src/protect/index.ts';
import { spawnCli, startServer, waitForStartup } from './helpers.ts';

const CLEAN_ENV: NodeJS.ProcessEnv = { SIDECAR_CONFIG: '', SIDECAR_LOG_LEVEL: '' };
let dir: string;

async function cli(args: string[], input?: string, env: NodeJS.ProcessEnv = {}) {
  const proc = spawnCli(args, { ...CLEAN_ENV, ...env }, { input });
  const code = await proc.exited;
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

function config(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'protect-cli-'));
});

describe('agent-sidecar redact', () => {
  it('protects JSON and text lines from stdin with the default rules', async () => {
    const input = ['{"user":{"email":"bob@example.com","password":"x"},"id":4155552671}', 'call +1 415 555 2671 about order 10482135', ''].join('\n');
    const r = await cli(['redact', '--stats'], input);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      '{"user":{"email":"[REDACTED:email]","password":"[REDACTED:password]"},"id":4155552671}\ncall [REDACTED:phone] about order 10482135\n',
    );
    expect(r.stderr).toContain('protected: email=1 password=1 phone=1');
  });

  it('uses the configured rule sets', async () => {
    const file = config('rules.yaml', [
      'protection:',
      '  rules:',
      '    strict:',
      '      detectors: { ip: redact }',
      '      custom: [{ name: order_ref, pattern: "ORD-[0-9]{8}" }]',
    ]);
    const r = await cli(['redact', '--config', file, '--rules', 'strict'], 'host 10.0.0.7 ORD-12345678\n');
    expect(r.stdout).toBe('host [REDACTED:ip] [REDACTED:order_ref]\n');
  });

  it('treats a PEM private key spanning lines as one block', async () => {
    const r = await cli(['redact', '--format', 'text'], 'before\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\nabc==\n-----END EC PRIVATE KEY-----\nafter\n');
    expect(r.stdout).toBe('before\n[REDACTED:private_key]\nafter\n');
  });

  it('reports a bad line by number (not content), keeps the others, exits 2 with a code', async () => {
    const r = await cli(['redact', '--format', 'json'], '{"a":"bob@example.com"}\n{"secret": bob@example.com\n{"b":1}\n');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('{"a":"[REDACTED:email]"}\n{"b":1}\n');
    expect(r.stderr).toContain('line 2: not valid JSON; left out [SIDECAR_INPUT_INVALID]');
    expect(r.stderr).toContain('[SIDECAR_INPUT_INVALID]');
    expect(r.stderr).not.toContain('bob@example.com');
  });

  it('stops at start with a clear error for a bad custom pattern', async () => {
    const file = config('bad.yaml', ['protection:', '  rules:', '    default:', '      custom: [{ name: x, pattern: "(?i)token" }]']);
    const r = await cli(['redact', '--config', file], '');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('protection.rules.default.custom.0.pattern: inline flags such as (?i) do not exist');
    expect(r.stderr).toContain('[SIDECAR_CONFIG_INVALID]');
  });
});

describe('agent-sidecar keys generate / activate and decrypt', () => {
  it('prints a fresh 256-bit key', async () => {
    const a = await cli(['keys', 'generate']);
    const b = await cli(['keys', 'generate', '--encoding', 'hex']);
    expect(a.code).toBe(0);
    expect(Buffer.from(a.stdout.trim(), 'base64url')).toHaveLength(32);
    expect(b.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    const again = await cli(['keys', 'generate']);
    expect(again.stdout).not.toBe(a.stdout);
  });

  it('prints a passphrase key entry with a random salt, never the passphrase', async () => {
    const r = await cli(['keys', 'generate', '--id', 'p1', '--passphrase-env', 'MY_PASS']);
    const [entry] = parse(r.stdout) as Array<{ id: string; passphraseEnv: string; salt: string }>;
    expect(entry).toMatchObject({ id: 'p1', passphraseEnv: 'MY_PASS' });
    expect(Buffer.from(entry!.salt, 'base64url')).toHaveLength(16);
  });

  it('rotates through a key ring: encrypt, add a key, activate it, old and new values decrypt', async () => {
    const ring = join(dir, 'ring.yaml');
    expect((await cli(['keys', 'generate', '--ring', ring, '--id', 'k1'])).stdout).toBe('k1\n');
    expect(statSync(ring).mode & 0o777).toBe(0o600);
    const file = config('enc.yaml', [
      'protection:',
      '  rules:',
      '    default:',
      '      fields: [{ path: ssn, action: encrypt }, { path: "customer.card", action: encrypt }]',
      `  keys: { file: ${ring} }`,
    ]);
    const first = await cli(['redact', '--config', file], '{"ssn":"123-45-6789","customer":{"card":{"number":"4111111111111111","exp":"12/30"}}}\n');
    const oldLine = first.stdout.trim();
    expect(oldLine).toMatch(/"ssn":"enc:v1:k1:/);

    const added = await cli(['keys', 'generate', '--ring', ring, '--id', 'k2']);
    expect(added.stderr).toContain('active stays k1');
    expect((parse(readFileSync(ring, 'utf8')) as { active: string }).active).toBe('k1');
    const activated = await cli(['keys', 'activate', '--ring', ring, '--id', 'k2']);
    expect(activated.code).toBe(0);
    expect(activated.stderr).toContain('"operation":"activate_protection_key"');
    const second = await cli(['redact', '--config', file], '{"ssn":"987-65-4321"}\n');
    const newLine = second.stdout.trim();
    expect(newLine).toMatch(/"ssn":"enc:v1:k2:/);

    const opened = await cli(['decrypt', '--config', file, '--field', 'ssn', '--field', 'customer.card'], `${oldLine}\n${newLine}\n`);
    expect(opened.code).toBe(0);
    expect(opened.stdout).toBe('{"ssn":"123-45-6789","customer":{"card":{"number":"4111111111111111","exp":"12/30"}}}\n{"ssn":"987-65-4321"}\n');
    expect(opened.stderr).toContain('"operation":"decrypt"');
  });

  it('decrypts every envelope with --all, and reports a tampered one by line and field, leaving it encrypted', async () => {
    const key = randomBytes(32).toString('base64url');
    const file = config('env.yaml', [
      'protection:',
      '  rules:',
      '    default:',
      '      detectors: { email: encrypt }',
      '  keys:',
      '    ring: [{ id: e1, env: TEST_PROTECT_KEY }]',
    ]);
    const env = { TEST_PROTECT_KEY: key };
    const sealed = (await cli(['redact', '--config', file], '{"note":"write to bob@example.com today"}\n', env)).stdout.trim();
    expect(sealed).toMatch(/"note":"write to enc:v1:e1:[A-Za-z0-9_-]+ today"/);
    const all = await cli(['decrypt', '--config', file, '--all'], `${sealed}\n`, env);
    expect(all.stdout).toBe('{"note":"write to bob@example.com today"}\n');

    const doc = JSON.parse(sealed) as { note: string };
    const envelope = /enc:v1:e1:[A-Za-z0-9_-]+/.exec(doc.note)![0];
    const tampered = JSON.stringify({ email: `${envelope.slice(0, -2)}${envelope.endsWith('AA') ? 'BB' : 'AA'}` });
    const r = await cli(['decrypt', '--config', file, '--field', 'email'], `${tampered}\nnot json\n${JSON.stringify({ email: envelope })}\n`, env);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe(`${tampered}\n{"email":"bob@example.com"}\n`);
    expect(r.stderr).toContain('line 1: email:');
    expect(r.stderr).toContain('[SIDECAR_DECRYPT_FAILED]');
    expect(r.stderr).toContain('line 2: not valid JSON; left out [SIDECAR_INPUT_INVALID]');
    const wrongKey = await cli(['decrypt', '--config', file, '--field', 'email'], `${JSON.stringify({ email: envelope })}\n`, {
      TEST_PROTECT_KEY: randomBytes(32).toString('hex'),
    });
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toContain('[SIDECAR_DECRYPT_FAILED]');
  });

  it('refuses a missing key variable at start with its code, in validate as in the commands', async () => {
    const file = config('missing.yaml', ['protection:', '  keys:', '    ring: [{ id: m1, env: NOT_SET_ANYWHERE }]']);
    const r = await cli(['decrypt', '--config', file, '--all'], '{}\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[SIDECAR_PROTECTION_KEYS_INVALID]');
    const v = await cli(['validate', '--config', file]);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain('NOT_SET_ANYWHERE is not set [SIDECAR_PROTECTION_KEYS_INVALID]');
  });
});

describe('key rotation in a running sidecar', () => {
  it('encrypts with the new key after SIGHUP, without a restart, and the old values still decrypt', async () => {
    const seen: string[] = [];
    const upstream = await startServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push(body);
        res.end('ok');
      });
    });
    const ring = join(dir, 'live-ring.yaml');
    await cli(['keys', 'generate', '--ring', ring, '--id', 'live1']);
    const file = config('live.yaml', [
      'listen: { address: 127.0.0.1:0 }',
      'admin: { address: 127.0.0.1:0 }',
      `upstream: { url: ${upstream.url} }`,
      'protection:',
      '  rules: { default: { fields: [{ path: email, action: encrypt }] } }',
      '  routes: [{ path: /*, response: false }]',
      `  keys: { file: ${ring} }`,
    ]);
    const proc = spawnCli(['run', '--config', file], { ...CLEAN_ENV, SIDECAR_LISTEN: '', SIDECAR_UPSTREAM: '', SIDECAR_ADMIN: '', OTEL_SDK_DISABLED: 'true' });
    try {
      const { listen } = await waitForStartup(proc);
      const post = async () => {
        const res = await request(`${listen}/api/v1/users`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"email":"bob@example.com"}',
        });
        await res.body.text();
        return JSON.parse(seen.at(-1)!) as { email: string };
      };
      const before = await post();
      expect(before.email).toMatch(/^enc:v1:live1:/);
      await cli(['keys', 'generate', '--ring', ring, '--id', 'live2', '--activate']);
      proc.child.kill('SIGHUP');
      const deadline = Date.now() + 5000;
      while (!proc.stdout().includes('protection keys reloaded: active live2') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const after = await post();
      expect(after.email).toMatch(/^enc:v1:live2:/);
      const keys = await loadKeyRing({ file: ring, ring: [], active: undefined });
      expect(keys.decrypt(before.email).plaintext).toBe('bob@example.com');
      expect(keys.decrypt(after.email).plaintext).toBe('bob@example.com');
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
      await upstream.close();
    }
  });
});
