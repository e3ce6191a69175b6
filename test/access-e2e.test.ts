/**
 * End to end through the real sidecar: a real upstream on port 0 that records every request
 * it receives, a real JWKS endpoint, real child processes for the signal test. Assertions are
 * on stable error codes and on what the upstream received, never on messages or timing.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeyId } from '../src/auth/index.ts';
import { issueToken } from '../src/auth/issuer.ts';
import type { SidecarConfigInput } from '../src/config/index.ts';
import { DEFAULT_POLICY } from '../src/policy/default-policy.ts';
import { CLI, spawnCli, startServer, startSidecar, waitForStartup } from './helpers.ts';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** A real upstream on port 0 that records every request it receives and answers 200 JSON. */
async function startRecordingUpstream(responseHeaders: Record<string, string> = {}) {
  const seen: Seen[] = [];
  const server = await startServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers } });
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ ok: true, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...responseHeaders });
      res.end(body);
    });
  });
  return {
    ...server,
    seen,
    /** What arrived at the given path (health probes of /readyz land on / and are ignored). */
    at: (url: string) => seen.filter((s) => s.url === url),
    reset: () => void seen.splice(0),
  };
}
type RecordingUpstream = Awaited<ReturnType<typeof startRecordingUpstream>>;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The error code of a sidecar error body, if any. */
  code: string | undefined;
  json: Record<string, unknown> | undefined;
}

function toReply(status: number, headers: http.IncomingHttpHeaders, text: string): Reply {
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  const error = json?.error as { code?: unknown } | undefined;
  return { status, headers, text, json, code: typeof error?.code === 'string' ? error.code : undefined };
}

/** One request over a fresh connection; node:http sends `path` byte for byte (no normalization). */
function call(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(toReply(res.statusCode ?? 0, res.headers, text)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A request written on a raw socket, request line verbatim (for targets an HTTP client
 * would refuse or rewrite, such as a backslash). Answers the parsed response.
 */
async function rawCall(port: number, method: string, target: string, headers: Record<string, string> = {}): Promise<Reply> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const lines = [`${method} ${target} HTTP/1.1`, `host: 127.0.0.1:${port}`, 'connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  await once(socket, 'close');
  const raw = Buffer.concat(chunks).toString('latin1');
  const split = raw.indexOf('\r\n\r\n');
  if (split === -1) throw new Error(`no complete response head for ${target}: ${JSON.stringify(raw)}`);
  const [statusLine, ...headerLines] = raw.slice(0, split).split('\r\n');
  const status = Number(statusLine!.split(' ')[1]);
  const parsed: http.IncomingHttpHeaders = {};
  for (const l of headerLines) {
    const i = l.indexOf(':');
    parsed[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = raw.slice(split + 4);
  if (String(parsed['transfer-encoding']).toLowerCase() === 'chunked') {
    let out = '';
    let rest = body;
    for (;;) {
      const eol = rest.indexOf('\r\n');
      const size = Number.parseInt(rest.slice(0, eol), 16);
      if (!size) break;
      out += rest.slice(eol + 2, eol + 2 + size);
      rest = rest.slice(eol + 2 + size + 2);
    }
    body = out;
  }
  return toReply(status, parsed, Buffer.from(body, 'latin1').toString('utf8'));
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const ISS = 'https://idp.test';
const AUD = 'agent-api';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/** An RS256 identity provider: a real JWKS endpoint on port 0 and a signer. */
async function startIdp() {
  const good = await generateKeyPair('RS256', { extractable: true });
  const attacker = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(good.publicKey)), kid: 'rsa-1', use: 'sig', alg: 'RS256' };
  const server = await startServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  const claims = (extra: JWTPayload = {}): JWTPayload => ({ iss: ISS, aud: AUD, iat: nowS(), exp: nowS() + 600, ...extra });
  const signWith = (key: Key, payload: JWTPayload, kid = 'rsa-1') => new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
  return {
    jwksUrl: server.url,
    close: server.close,
    /** A good token for `sub` with these roles. */
    token: (sub: string, roles: string[], extra: JWTPayload = {}) => signWith(good.privateKey, claims({ sub, roles, ...extra })),
    sign: (payload: JWTPayload) => signWith(good.privateKey, claims(payload)),
    signAsAttacker: (payload: JWTPayload) => signWith(attacker.privateKey, claims(payload)),
    claims,
  };
}

/** Polls until `condition` holds, up to `timeoutMs`. */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Runs the CLI to completion (for `keys create`); stdout and stderr apart. */
async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

// ---------------------------------------------------------------------------------------------

const SECRET = 's'.repeat(48);
const ADMIN_ORIGIN = 'https://app.example';
const IDENTITY_HEADERS = ['x-auth-subject', 'x-auth-roles', 'x-auth-scopes', 'x-auth-key-id', 'x-auth-tenant'] as const;
const SPOOFED = {
  'X-Auth-Subject': 'admin',
  'X-Auth-Roles': 'admin',
  'X-Auth-Scopes': 'everything',
  'X-Auth-Key-Id': 'forged-key',
  'X-Auth-Tenant': 'other-tenant',
};

let idp: Awaited<ReturnType<typeof startIdp>>;
let upstream: RecordingUpstream;
let dir: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'access-e2e-'));
  idp = await startIdp();
  upstream = await startRecordingUpstream();
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await upstream?.close();
  await idp?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An in-process sidecar in front of `target` (the shared recording upstream by default). */
async function sidecar(input: SidecarConfigInput, target: RecordingUpstream = upstream) {
  const sc = await startSidecar({ ...input, upstream: { url: target.url, ...input.upstream } });
  closers.push(sc.close);
  return sc;
}

const jwksAuth = (): SidecarConfigInput['auth'] => ({ jwt: { jwksUrl: idp.jwksUrl, issuer: ISS, audience: AUD } });

describe('1. JWT RS256 through a real JWKS endpoint, default policy', () => {
  let sc: Awaited<ReturnType<typeof sidecar>>;
  beforeAll(async () => {
    sc = await sidecar({ auth: jwksAuth() });
  });

  it('refuses alg none, expired, wrong signature and a refresh token with 401 and its code; nothing reaches the upstream', async () => {
    upstream.reset();
    const attacks: Array<[string, string, string]> = [
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(idp.claims({ sub: 'mallory', roles: ['admin'] }))}.`, 'SIDECAR_TOKEN_ALGORITHM_REFUSED'],
      ['expired', await idp.token('alice', ['analyst'], { iat: nowS() - 7200, exp: nowS() - 3600 }), 'SIDECAR_TOKEN_EXPIRED'],
      ['wrong signature', await idp.signAsAttacker({ sub: 'mallory', roles: ['admin'] }), 'SIDECAR_TOKEN_SIGNATURE_INVALID'],
      ['refresh token as access', await idp.token('alice', ['analyst'], { type: 'refresh' }), 'SIDECAR_TOKEN_TYPE_REFUSED'],
    ];
    const got = [];
    for (const [name, token] of attacks) {
      const res = await call(sc.url, 'GET', '/api/v1/agents', bearer(token));
      got.push([name, res.status, res.code]);
    }
    expect(got).toEqual(attacks.map(([name, , code]) => [name, 401, code]));
    expect(upstream.seen).toEqual([]);
  });

  it('a valid analyst token passes; the upstream gets X-Auth-Subject and X-Auth-Roles but not the Authorization header', async () => {
    upstream.reset();
    const res = await call(sc.url, 'GET', '/api/v1/agents', bearer(await idp.token('alice', ['analyst'])));
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    const h = upstream.seen[0]!.headers;
    expect(upstream.seen[0]!.url).toBe('/api/v1/agents');
    expect(h['x-auth-subject']).toBe('alice');
    expect(h['x-auth-roles']).toBe('analyst');
    expect(h.authorization).toBeUndefined();
  });
});

describe('2. path bypasses with a user token (view:conversation only)', () => {
  // [sent, expected status, expected code, what the upstream must receive (undefined: nothing)]
  const cases: Array<[string, number, string | undefined, string | undefined]> = [
    ['/api/v1/conversations/../agents', 403, 'SIDECAR_FORBIDDEN', undefined],
    ['//api/v1/agents', 403, 'SIDECAR_FORBIDDEN', undefined],
    ['/api/v1/agents%2F1', 400, 'SIDECAR_PATH_INVALID', undefined],
    ['/api/v1/agents%2f1', 400, 'SIDECAR_PATH_INVALID', undefined],
    ['/api/v1/conversations/%2e%2e/agents', 403, 'SIDECAR_FORBIDDEN', undefined],
    ['/api/v1/conversations/%2E%2E/agents', 403, 'SIDECAR_FORBIDDEN', undefined],
    ['/api/v1/conversations/%252e%252e/agents', 403, 'SIDECAR_ROUTE_NOT_ALLOWED', undefined],
    ['/api\\v1\\agents', 400, 'SIDECAR_PATH_INVALID', undefined],
    ['/api/v1/conversations/..%5cagents', 400, 'SIDECAR_PATH_INVALID', undefined],
    ['/api/v1/conversations/', 200, undefined, '/api/v1/conversations'],
    ['/api/v1/conversations/.', 200, undefined, '/api/v1/conversations'],
    ['/api/v1/%63onversations', 200, undefined, '/api/v1/conversations'],
    ['/api/v1/conversations?next=/../agents', 200, undefined, '/api/v1/conversations?next=/../agents'],
    ['/api/v1/agents;x=1', 400, 'SIDECAR_PATH_INVALID', undefined],
    ['/api/v1/conversations;/../agents', 400, 'SIDECAR_PATH_INVALID', undefined],
    ['/API/v1/agents', 403, 'SIDECAR_ROUTE_NOT_ALLOWED', undefined],
    ['/api/v1/Agents', 403, 'SIDECAR_ROUTE_NOT_ALLOWED', undefined],
    ['/api/v1/agents', 403, 'SIDECAR_FORBIDDEN', undefined],
  ];

  it('answers each with its exact status and code, and the upstream only ever receives a normalized, allowed path', async () => {
    const sc = await sidecar({ auth: jwksAuth() });
    const token = await idp.token('bob', ['user']);
    const got: Array<[string, number, string | undefined, string | undefined]> = [];
    const allReceived: string[] = [];
    for (const [sent] of cases) {
      upstream.reset();
      const res = await rawCall(sc.port, 'GET', sent, bearer(token));
      const received = upstream.seen.map((s) => s.url);
      allReceived.push(...received);
      got.push([sent, res.status, res.code, received.length === 0 ? undefined : received.join(' | ')]);
    }
    expect(got).toEqual(cases);
    // Everything that arrived is a path this token is allowed on, in canonical form.
    for (const url of allReceived) expect(url.split('?')[0]).toBe('/api/v1/conversations');
  });
});

describe('3. spoofed identity headers', () => {
  it('with a user token the upstream sees only the true identity', async () => {
    const sc = await sidecar({ auth: jwksAuth() });
    upstream.reset();
    const token = await idp.token('bob', ['user'], { scopes: ['read'], tenant_id: 'tenant-b' });
    const res = await call(sc.url, 'GET', '/api/v1/conversations', { ...bearer(token), ...SPOOFED });
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    const h = upstream.seen[0]!.headers;
    // For a JWT the key id is the `kid` of the key that verified it (Principal.keyId).
    expect({
      subject: h['x-auth-subject'],
      roles: h['x-auth-roles'],
      scopes: h['x-auth-scopes'],
      keyId: h['x-auth-key-id'],
      tenant: h['x-auth-tenant'],
    }).toEqual({ subject: 'bob', roles: 'user', scopes: 'read', keyId: undefined, tenant: 'tenant-b' });
  });

  it('on public /health without a token the upstream sees none of them', async () => {
    const sc = await sidecar({ auth: jwksAuth() });
    upstream.reset();
    const res = await call(sc.url, 'GET', '/health', SPOOFED);
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    for (const name of IDENTITY_HEADERS) expect(upstream.seen[0]!.headers[name], name).toBeUndefined();
  });

  it('with auth off they are still removed', async () => {
    const sc = await sidecar({});
    upstream.reset();
    const res = await call(sc.url, 'GET', '/api/v1/agents', { ...SPOOFED, 'x-auth-subject': 'root' });
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    for (const name of IDENTITY_HEADERS) expect(upstream.seen[0]!.headers[name], name).toBeUndefined();
  });
});

describe('4. method override headers', () => {
  const overrides = { 'X-HTTP-Method-Override': 'DELETE', 'X-HTTP-Method': 'DELETE', 'X-Method-Override': 'DELETE' };

  it('default (strip): GET with an override passes as a GET and the upstream sees no override header', async () => {
    const sc = await sidecar({ auth: jwksAuth() });
    upstream.reset();
    const res = await call(sc.url, 'GET', '/api/v1/agents/1', { ...bearer(await idp.token('alice', ['analyst'])), ...overrides });
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    expect(upstream.seen[0]!.method).toBe('GET');
    for (const name of Object.keys(overrides)) expect(upstream.seen[0]!.headers[name.toLowerCase()], name).toBeUndefined();
  });

  it('authorize: the named method is authorized, so an analyst gets 403 naming delete:agent', async () => {
    const sc = await sidecar({ auth: jwksAuth(), policy: { methodOverride: 'authorize' } });
    upstream.reset();
    const res = await call(sc.url, 'GET', '/api/v1/agents/1', { ...bearer(await idp.token('alice', ['analyst'])), 'X-HTTP-Method-Override': 'DELETE' });
    expect([res.status, res.code]).toEqual([403, 'SIDECAR_FORBIDDEN']);
    expect((res.json?.error as Record<string, unknown>).permission).toBe('delete:agent');
    expect(upstream.seen).toEqual([]);
  });
});

describe('5. error answers', () => {
  let sc: Awaited<ReturnType<typeof sidecar>>;
  beforeAll(async () => {
    sc = await sidecar({ auth: jwksAuth() });
  });

  it('403 names the missing permission', async () => {
    const res = await call(sc.url, 'GET', '/api/v1/agents', bearer(await idp.token('bob', ['user'])));
    expect([res.status, res.code]).toEqual([403, 'SIDECAR_FORBIDDEN']);
    expect((res.json?.error as Record<string, unknown>).permission).toBe('view:agent');
  });

  it('401 without a credential carries WWW-Authenticate: Bearer', async () => {
    const res = await call(sc.url, 'GET', '/api/v1/agents');
    expect([res.status, res.code]).toEqual([401, 'SIDECAR_CREDENTIALS_MISSING']);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
  });

  it('401 for a bad token carries WWW-Authenticate: Bearer too (RFC 9110 11.6.1, RFC 6750 3)', async () => {
    const expired = await idp.token('alice', ['analyst'], { iat: nowS() - 7200, exp: nowS() - 3600 });
    const res = await call(sc.url, 'GET', '/api/v1/agents', bearer(expired));
    expect([res.status, res.code]).toEqual([401, 'SIDECAR_TOKEN_EXPIRED']);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
  });

  it('an unknown route is 403 SIDECAR_ROUTE_NOT_ALLOWED', async () => {
    upstream.reset();
    const res = await call(sc.url, 'GET', '/api/v2/agents', bearer(await idp.token('root', ['admin'])));
    expect([res.status, res.code]).toEqual([403, 'SIDECAR_ROUTE_NOT_ALLOWED']);
    expect(upstream.seen).toEqual([]);
  });
});

describe('6. policy dry run', () => {
  it('lets a would-be denial through and records it as an audit event', async () => {
    const sc = await sidecar({ auth: jwksAuth(), policy: { dryRun: true } });
    upstream.reset();
    const res = await call(sc.url, 'GET', '/api/v1/agents', bearer(await idp.token('bob', ['user'])));
    expect(res.status).toBe(200);
    expect(upstream.at('/api/v1/agents')).toHaveLength(1);
    const requestId = res.headers['x-request-id'];
    const isEvent = (l: Record<string, unknown>) =>
      l.logger === 'agent-sidecar.audit' && l.event_type === 'authorization' && l.allowed === false && l.dry_run === true && l.request_id === requestId;
    await until(() => sc.logs.lines.some(isEvent), 5000, 'the dry-run audit event');
    expect(sc.logs.lines.find(isEvent)).toMatchObject({ user_id: 'bob', action: 'view:agent', resource: 'GET /api/v1/agents' });
  });
});

describe('7. API keys made by `keys create`', () => {
  it('a key from the key file authenticates; the upstream gets X-Auth-Key-Id but never the key', async () => {
    const file = join(dir, 'keys.yaml');
    const created = await runCli(['keys', 'create', '--file', file, '--sub', 'bot-1', '--role', 'analyst']);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(readFileSync(file, 'utf8')).not.toContain(key);
    const sc = await sidecar({ auth: { apiKeys: { file } } });

    upstream.reset();
    const res = await call(sc.url, 'GET', '/api/v1/agents', { 'x-api-key': key });
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    const h = upstream.seen[0]!.headers;
    expect(h['x-auth-key-id']).toBe(apiKeyId(key));
    expect(h['x-auth-subject']).toBe('bot-1');
    expect(h['x-auth-roles']).toBe('analyst');
    expect(h['x-api-key']).toBeUndefined();

    upstream.reset();
    const bad = await call(sc.url, 'GET', '/api/v1/agents', { 'x-api-key': `${key.slice(0, -4)}AAAA` });
    expect([bad.status, bad.code]).toEqual([401, 'SIDECAR_API_KEY_INVALID']);
    expect(upstream.seen).toEqual([]);
  });
});

/** The default policy with `user` granted these permissions, as YAML. */
function policyYaml(userPermissions: string[]): string {
  return stringify({ ...DEFAULT_POLICY, roles: { ...DEFAULT_POLICY.roles, user: userPermissions } });
}

describe('8. policy edits while requests flow', () => {
  it('an edit applies without failing a request; a broken file is refused and the last good policy keeps serving', async () => {
    const file = join(dir, 'policy-live.yaml');
    writeFileSync(file, policyYaml(['view:conversation']));
    const sc = await sidecar({ auth: jwksAuth(), policy: { file } });
    const token = await idp.token('bob', ['user']);
    const first = await call(sc.url, 'GET', '/api/v1/agents', bearer(token));
    expect([first.status, first.code]).toEqual([403, 'SIDECAR_FORBIDDEN']);

    // 20 concurrent streams of sequential requests.
    let running = true;
    const streams = Array.from({ length: 20 }, async () => {
      const results: Array<[number, string | undefined]> = [];
      while (running) {
        try {
          const r = await call(sc.url, 'GET', '/api/v1/agents', bearer(token));
          results.push([r.status, r.code]);
        } catch (err) {
          results.push([0, String(err)]);
        }
      }
      return results;
    });

    try {
      await new Promise((r) => setTimeout(r, 100));
      writeFileSync(file, policyYaml(['view:conversation', 'view:agent']));
      await until(async () => (await call(sc.url, 'GET', '/api/v1/agents', bearer(token))).status === 200, 5000, 'the edited policy');
      // A few more requests after the switch on every stream.
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      running = false;
    }
    const all = await Promise.all(streams);
    for (const results of all) {
      expect(results.length).toBeGreaterThan(0);
      const firstAllowed = results.findIndex(([s]) => s === 200);
      // Only 403 SIDECAR_FORBIDDEN before the switch, only 200 after it: no error, no flapping back.
      for (const [i, r] of results.entries()) expect(r).toEqual(firstAllowed !== -1 && i >= firstAllowed ? [200, undefined] : [403, 'SIDECAR_FORBIDDEN']);
    }
    expect(all.some((results) => results.some(([s]) => s === 200))).toBe(true);

    // A broken file is refused, logged with its code, and the previous policy keeps serving.
    writeFileSync(file, 'roles: [this is not\n  - valid: {yaml\n');
    await until(() => sc.logs.lines.some((l) => l.event_type === 'policy_reload' && l.error_type === 'SIDECAR_POLICY_INVALID'), 5000, 'the refusal log record');
    expect((await call(sc.url, 'GET', '/api/v1/agents', bearer(token))).status).toBe(200);

    // Valid YAML that breaks the schema is refused the same way.
    const before = sc.logs.lines.filter((l) => l.error_type === 'SIDECAR_POLICY_INVALID').length;
    writeFileSync(file, stringify({ roles: { user: ['view:agent'] }, routes: [{ path: 'no-leading-slash', methods: { GET: 'view:agent' } }] }));
    await until(() => sc.logs.lines.filter((l) => l.error_type === 'SIDECAR_POLICY_INVALID').length > before, 5000, 'the second refusal');
    expect((await call(sc.url, 'GET', '/api/v1/agents', bearer(token))).status).toBe(200);
    expect((await call(sc.url, 'GET', '/api/v1/conversations', bearer(token))).status).toBe(200);
  });

  it('SIGHUP makes a running process re-read the policy file', async () => {
    const file = join(dir, 'policy-hup.yaml');
    // Both versions have the same size and mtime, so the file watcher cannot tell them apart:
    // only the signal can load the second one.
    const before = policyYaml(['view:conversation']);
    let after = policyYaml(['view:conversation', 'view:agent']);
    const longer = Math.max(before.length, after.length);
    const pad = (text: string) => (text.length < longer ? `${text}#${'-'.repeat(longer - text.length - 2)}\n` : text);
    after = pad(after);
    const first = pad(before);
    expect(first.length).toBe(after.length);
    const stamp = new Date('2024-01-01T00:00:00Z');
    writeFileSync(file, first);
    utimesSync(file, stamp, stamp);

    const config = join(dir, 'hup.yaml');
    writeFileSync(
      config,
      stringify({
        listen: { address: '127.0.0.1:0' },
        admin: { address: '127.0.0.1:0' },
        upstream: { url: upstream.url },
        auth: { jwt: { secret: SECRET } },
        policy: { file },
      }),
    );
    const proc = spawnCli(['run', '--config', config], {
      SIDECAR_CONFIG: '',
      SIDECAR_LISTEN: '',
      SIDECAR_UPSTREAM: '',
      SIDECAR_ADMIN: '',
      SIDECAR_LOG_LEVEL: '',
    });
    closers.push(async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        proc.child.kill('SIGKILL');
        await proc.exited;
      }
    });
    const info = await waitForStartup(proc);
    const url = info.listen;
    const token = await issueToken(SECRET, { sub: 'hup-user', roles: ['user'] }, 600_000);
    expect((await call(url, 'GET', '/api/v1/agents', bearer(token))).code).toBe('SIDECAR_FORBIDDEN');

    writeFileSync(file, after);
    utimesSync(file, stamp, stamp);
    // Longer than two polls of the watcher: it must not have seen the change.
    await new Promise((r) => setTimeout(r, 1200));
    expect((await call(url, 'GET', '/api/v1/agents', bearer(token))).code).toBe('SIDECAR_FORBIDDEN');

    proc.child.kill('SIGHUP');
    const reloaded = () =>
      proc
        .output()
        .split('\n')
        .some((l) => l.includes('"event_type":"policy_reload"') && !l.includes('error_type'));
    await until(reloaded, 5000, 'the policy reload after SIGHUP');
    const res = await call(url, 'GET', '/api/v1/agents', bearer(token));
    expect(res.status).toBe(200);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });
});

describe('11. CORS', () => {
  let sc: Awaited<ReturnType<typeof sidecar>>;
  let corsUpstream: RecordingUpstream;
  beforeAll(async () => {
    // An upstream that sends its own, too-permissive CORS header.
    corsUpstream = await startRecordingUpstream({ 'access-control-allow-origin': '*' });
    closers.push(corsUpstream.close);
    sc = await sidecar({ auth: jwksAuth(), cors: { allowedOrigins: [ADMIN_ORIGIN] } }, corsUpstream);
  });

  it('a preflight from an allowed origin is answered 204 without a token, and nothing is forwarded', async () => {
    corsUpstream.reset();
    const res = await call(sc.url, 'OPTIONS', '/api/v1/agents', {
      origin: ADMIN_ORIGIN,
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'authorization',
    });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(ADMIN_ORIGIN);
    expect(corsUpstream.seen).toEqual([]);
  });

  it('a preflight from another origin is 403 SIDECAR_CORS_REFUSED', async () => {
    corsUpstream.reset();
    const res = await call(sc.url, 'OPTIONS', '/api/v1/agents', { origin: 'https://evil.example', 'access-control-request-method': 'GET' });
    expect([res.status, res.code]).toEqual([403, 'SIDECAR_CORS_REFUSED']);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    expect(corsUpstream.seen).toEqual([]);
  });

  it("an actual request carries the sidecar's Access-Control-Allow-Origin only; the upstream's * is dropped", async () => {
    corsUpstream.reset();
    const res = await call(sc.url, 'GET', '/api/v1/agents', { origin: ADMIN_ORIGIN, ...bearer(await idp.token('alice', ['analyst'])) });
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(ADMIN_ORIGIN);
    expect(corsUpstream.seen).toHaveLength(1);
  });

  it('a 401 for a browser request from an allowed origin carries Access-Control-Allow-Origin', async () => {
    const res = await call(sc.url, 'GET', '/api/v1/agents', { origin: ADMIN_ORIGIN });
    expect([res.status, res.code]).toEqual([401, 'SIDECAR_CREDENTIALS_MISSING']);
    expect(res.headers['access-control-allow-origin']).toBe(ADMIN_ORIGIN);
  });
});

describe('12. refresh endpoint', () => {
  let sc: Awaited<ReturnType<typeof sidecar>>;
  beforeAll(async () => {
    sc = await sidecar({ auth: { jwt: { secret: SECRET }, refresh: { enabled: true } } });
  });

  it('exchanges a refresh token (Bearer) for an access token that works', async () => {
    upstream.reset();
    const refresh = await issueToken(SECRET, { sub: 'carol', roles: ['analyst'], type: 'refresh' }, 3_600_000);
    const res = await call(sc.url, 'POST', '/auth/refresh', bearer(refresh));
    expect([res.status, res.code]).toEqual([200, undefined]);
    const access = res.json?.access_token;
    expect(typeof access).toBe('string');
    const use = await call(sc.url, 'GET', '/api/v1/agents', bearer(access as string));
    expect(use.status).toBe(200);
    expect(upstream.seen.map((s) => [s.url, s.headers['x-auth-subject'], s.headers['x-auth-roles']])).toEqual([['/api/v1/agents', 'carol', 'analyst']]);
  });

  it('exchanges a refresh token sent in the JSON body', async () => {
    const refresh = await issueToken(SECRET, { sub: 'carol', roles: ['analyst'], type: 'refresh' }, 3_600_000);
    const res = await call(sc.url, 'POST', '/auth/refresh', { 'content-type': 'application/json' }, JSON.stringify({ refresh_token: refresh }));
    expect([res.status, res.code]).toEqual([200, undefined]);
    expect(typeof res.json?.access_token).toBe('string');
  });

  it('an access token sent to the refresh endpoint is 400 SIDECAR_REFRESH_INVALID', async () => {
    upstream.reset();
    const access = await issueToken(SECRET, { sub: 'carol', roles: ['analyst'] }, 3_600_000);
    const res = await call(sc.url, 'POST', '/auth/refresh', bearer(access));
    expect([res.status, res.code]).toEqual([400, 'SIDECAR_REFRESH_INVALID']);
    expect(upstream.seen).toEqual([]);
  });
});
