import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAuthenticator, issueToken } from '../src/auth/index.ts';
import { registerKeysCommand } from '../src/cli/keys.ts';
import { registerTokenCommand } from '../src/cli/token.ts';
import { validateConfig } from '../src/config/index.ts';
import { createLogger } from '../src/log/index.ts';

const logger = createLogger('silent');
const SECRET = 's'.repeat(40);

/** Runs the commands as main.ts registers them; returns what they wrote. */
async function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const program = new Command('agent-sidecar').exitOverride();
  registerKeysCommand(program);
  registerTokenCommand(program);
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return { stdout, stderr };
}

function requestWith(headers: Record<string, string>): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  req.headers = headers;
  return req;
}

afterEach(() => {
  delete process.env.JWT_SECRET;
});

describe('agent-sidecar keys', () => {
  it('create prints a key once, stores only its hash, and the key authenticates until revoked', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'keys-cli-')), 'keys.yaml');
    const { stdout, stderr } = await cli([
      'keys',
      'create',
      '--file',
      file,
      '--sub',
      'svc-ingest',
      '--role',
      'agent_operator',
      '--role',
      'viewer',
      '--ttl',
      '90d',
    ]);
    const key = stdout.trim();
    expect(key).toMatch(/^sk_sidecar_[a-z0-9]+_[A-Za-z0-9_-]{43}$/);
    expect(stdout.split('\n').filter(Boolean)).toHaveLength(1);
    expect(stderr).not.toContain(key);
    expect(stderr).toMatch(/"event_type":"sensitive_operation".*"operation":"create_api_key"/);
    expect(readFileSync(file, 'utf8')).not.toContain(key.slice(-43));

    const auth = await createAuthenticator(validateConfig({ auth: { apiKeys: { file } } }).auth, { logger });
    const principal = await auth.authenticate(requestWith({ 'x-api-key': key }));
    expect(principal).toMatchObject({ subject: 'svc-ingest', roles: ['agent_operator', 'viewer'], method: 'api_key' });
    expect(principal!.expiresAt! * 1000 - Date.now()).toBeGreaterThan(89 * 86_400_000);

    const second = (await cli(['keys', 'create', '--file', file, '--sub', 'svc-other'])).stdout.trim();
    const listed = (await cli(['keys', 'list', '--file', file])).stdout;
    const id = principal!.keyId!;
    expect(listed).toMatch(new RegExp(`${id}\\s+svc-ingest\\s+agent_operator,viewer\\s+\\d{4}-\\S+\\s+true`));
    expect(listed).toMatch(/svc-other\s+never\s+true/);
    expect(listed).not.toMatch(/[0-9a-f]{64}/);

    expect((await cli(['keys', 'revoke', '--file', file, '--id', id])).stderr).toMatch(/"operation":"revoke_api_key".*"key_id":"/);
    await auth.reload();
    await expect(auth.authenticate(requestWith({ 'x-api-key': key }))).rejects.toMatchObject({ code: 'SIDECAR_API_KEY_INVALID' });
    expect(await auth.authenticate(requestWith({ 'x-api-key': second }))).toMatchObject({ subject: 'svc-other' });
    expect((await cli(['keys', 'list', '--file', file, '--json'])).stdout).toContain('"enabled":false');
  });

  it('refuses bad input with a code', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'keys-cli-')), 'keys.yaml');
    // list and revoke need the file; only create makes it.
    for (const args of [
      ['keys', 'list', '--file', file],
      ['keys', 'revoke', '--file', file, '--id', 'nosuchkey'],
    ]) {
      await expect(cli(args), args.join(' ')).rejects.toMatchObject({ code: 'SIDECAR_API_KEYS_INVALID' });
    }
    writeFileSync(file, 'keys: []\n');
    for (const args of [
      ['keys', 'create', '--file', file],
      ['keys', 'create', '--file', file, '--sub', 'a', '--ttl', 'forever'],
      ['keys', 'create', '--sub', 'a'],
      ['keys', 'revoke', '--file', file, '--id', 'nosuchkey'],
    ]) {
      await expect(cli(args), args.join(' ')).rejects.toMatchObject({ code: 'SIDECAR_USAGE_INVALID' });
    }
  });
});

describe('agent-sidecar token', () => {
  it('mints an HS256 token that the sidecar verifies', async () => {
    process.env.JWT_SECRET = SECRET;
    const token = (await cli(['token', '--sub', 'alice', '--role', 'analyst', '--scope', 'agents:read', '--ttl', '10m'])).stdout.trim();
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'alice', roles: ['analyst'], scopes: ['agents:read'], type: 'access' });
    expect(claims.exp! - claims.iat!).toBe(600);
    expect(typeof claims.jti).toBe('string');

    const auth = await createAuthenticator(validateConfig({ auth: { jwt: { secret: SECRET } } }).auth, { logger });
    expect(await auth.authenticate(requestWith({ authorization: `Bearer ${token}` }))).toMatchObject({
      subject: 'alice',
      roles: ['analyst'],
      scopes: ['agents:read'],
    });
    const refresh = (await cli(['token', '--sub', 'alice', '--type', 'refresh', '--secret', SECRET])).stdout.trim();
    await expect(auth.authenticate(requestWith({ authorization: `Bearer ${refresh}` }))).rejects.toMatchObject({ code: 'SIDECAR_TOKEN_TYPE_REFUSED' });
  });

  it('refuses bad input with a code', async () => {
    for (const args of [
      ['token', '--sub', 'alice'],
      ['token', '--sub', 'alice', '--secret', 'short'],
      ['token', '--secret', SECRET],
      ['token', '--sub', 'a', '--secret', SECRET, '--ttl', 'soon'],
    ]) {
      await expect(cli(args), args.join(' ')).rejects.toMatchObject({ code: 'SIDECAR_USAGE_INVALID' });
    }
    await expect(cli(['token', '--sub', 'a', '--secret', SECRET, '--type', 'id'])).rejects.toMatchObject({ code: 'commander.invalidArgument' });
  });

  it('issueToken sets iat and exp from the clock', async () => {
    const token = await issueToken(SECRET, { sub: 'bob', scopes: ['x'] }, 90_000, { now: () => 1_700_000_000_000 });
    expect(decodeJwt(token)).toMatchObject({ sub: 'bob', iat: 1_700_000_000, exp: 1_700_000_090, type: 'access' });
    await expect(issueToken('short', { sub: 'bob' }, 1000)).rejects.toMatchObject({ code: 'SIDECAR_USAGE_INVALID' });
  });
});
