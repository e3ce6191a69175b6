/**
 * The MCP routes as an OAuth protected resource: RFC 9728 metadata at the root and
 * path-suffixed well-known URIs, 401 challenges that point at it, and tokens for another
 * audience refused (RFC 8707). The caller is the official MCP SDK client; the agent its server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/index.ts';
import { isSidecarError } from '../src/errors/index.ts';
import { startSidecar } from './helpers.ts';
import { startMcpAgent } from './mcp-agent.ts';

const SECRET = 'mcp-test-secret-of-at-least-32-characters!';
const ISSUER = 'https://auth.example.com';
const ORIGIN = 'https://agents.example.com';
const METADATA = `${ORIGIN}/.well-known/oauth-protected-resource/mcp`;

let agent: Awaited<ReturnType<typeof startMcpAgent>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let dir: string;

const token = (aud: string | string[] | undefined) => {
  const jwt = new SignJWT({ roles: ['user'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('carol').setIssuer(ISSUER).setExpirationTime('10m');
  if (aud !== undefined) jwt.setAudience(aud);
  return jwt.sign(new TextEncoder().encode(SECRET));
};

async function get(path: string) {
  const res = await request(`${sidecar.url}${path}`);
  return { status: res.statusCode, headers: res.headers, json: (await res.body.json().catch(() => undefined)) as Record<string, unknown> | undefined };
}

async function postMcp(path: string, headers: Record<string, string>) {
  const res = await request(`${sidecar.url}${path}`, {
    method: 'POST',
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
  });
  const text = await res.body.text();
  let code: unknown;
  try {
    code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: res.statusCode, challenge: res.headers['www-authenticate'], code };
}

beforeAll(async () => {
  agent = await startMcpAgent({ '/mcp': true });
  dir = mkdtempSync(join(tmpdir(), 'mcp-oauth-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    stringify({
      roles: { user: ['use:mcp'] },
      routes: [
        { path: '/mcp', methods: { POST: 'use:mcp', GET: 'use:mcp', DELETE: 'use:mcp' }, mcp: { tools: { get_weather: 'use:mcp' } } },
        { path: '/api/plain', methods: { POST: 'use:mcp' } },
      ],
    }),
  );
  sidecar = await startSidecar({
    upstream: { url: agent.url },
    auth: { jwt: { secret: SECRET, issuer: ISSUER } },
    policy: { file: policy },
    mcp: { protectedResource: { origin: ORIGIN, scopes: ['mcp:tools'] } },
  });
});

afterAll(async () => {
  await sidecar?.close();
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('protected resource metadata (RFC 9728)', () => {
  it('serves the document of an MCP route at its path-suffixed well-known URI, without a credential', async () => {
    const res = await get('/.well-known/oauth-protected-resource/mcp');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json).toEqual({
      resource: `${ORIGIN}/mcp`,
      authorization_servers: [ISSUER],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp:tools'],
    });
  });

  it('serves the root document, whose resource is the origin', async () => {
    const res = await get('/.well-known/oauth-protected-resource');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ resource: ORIGIN, authorization_servers: [ISSUER] });
  });

  it('serves none for a path that is not an MCP route', async () => {
    const res = await get('/.well-known/oauth-protected-resource/api/plain');
    expect(res.status).toBe(401);
    expect(res.json).not.toHaveProperty('resource');
  });
});

describe('challenges and audience on MCP routes', () => {
  it('answers 401 without a token, pointing at the metadata', async () => {
    const res = await postMcp('/mcp', {});
    expect(res.status).toBe(401);
    expect(res.code).toBe('SIDECAR_CREDENTIALS_MISSING');
    expect(res.challenge).toBe(`Bearer resource_metadata="${METADATA}", scope="mcp:tools"`);
  });

  it('answers 401 invalid_token for a bad token, pointing at the metadata', async () => {
    const res = await postMcp('/mcp', { authorization: 'Bearer not.a.jwt' });
    expect(res.status).toBe(401);
    expect(res.challenge).toBe(`Bearer error="invalid_token", resource_metadata="${METADATA}", scope="mcp:tools"`);
  });

  it('keeps the plain challenge on other routes', async () => {
    expect((await postMcp('/api/plain', {})).challenge).toBe('Bearer');
  });

  it.each([
    ['minted for another server', 'https://other.example.com/mcp'],
    ['minted for another route of this origin', `${ORIGIN}/other`],
    ['without an audience', undefined],
  ])('refuses a token %s: 401 SIDECAR_TOKEN_AUDIENCE_REFUSED, audited', async (_, aud) => {
    agent.reset();
    const res = await postMcp('/mcp', { authorization: `Bearer ${await token(aud)}` });
    expect(res.status).toBe(401);
    expect(res.code).toBe('SIDECAR_TOKEN_AUDIENCE_REFUSED');
    expect(res.challenge).toBe(`Bearer error="invalid_token", resource_metadata="${METADATA}", scope="mcp:tools"`);
    expect(agent.received).toHaveLength(0);
    expect(sidecar.logs.lines.filter((l) => l.event_type === 'authentication').at(-1)).toMatchObject({
      success: false,
      reason: 'SIDECAR_TOKEN_AUDIENCE_REFUSED',
    });
  });

  it('does not ask non-MCP routes for this audience', async () => {
    const res = await postMcp('/api/plain', { authorization: `Bearer ${await token('https://other.example.com')}` });
    // The agent's own 404: the sidecar let it through.
    expect(res.status).toBe(404);
  });

  it.each([
    ['the route', `${ORIGIN}/mcp`],
    ['the origin (root metadata)', ORIGIN],
    ['the route among others, spelled with a trailing slash', ['https://other.example.com', 'https://AGENTS.example.com/mcp/']],
  ])('lets the SDK client in with a token for %s', async (_, aud) => {
    const client = new Client({ name: 'mcp-oauth-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${sidecar.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${await token(aud)}` } } }),
    );
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual([
      'delete_document',
      'get_weather',
      'internal_reindex',
      'search_documents',
      'unlisted_tool',
    ]);
    await client.close();
  });
});

describe('mcp.protectedResource in the configuration', () => {
  const problems = (input: Record<string, unknown>): string => {
    try {
      validateConfig(input);
    } catch (err) {
      if (isSidecarError(err)) return err.message;
      throw err;
    }
    return '';
  };
  it('needs auth.jwt, and issuers from somewhere', () => {
    expect(problems({ mcp: { protectedResource: { origin: ORIGIN } } })).toContain('mcp.protectedResource: needs auth.jwt');
    expect(problems({ auth: { jwt: { secret: SECRET } }, mcp: { protectedResource: { origin: ORIGIN } } })).toContain(
      'mcp.protectedResource.authorizationServers: list the authorization servers',
    );
    expect(problems({ auth: { jwt: { secret: SECRET } }, mcp: { protectedResource: { origin: ORIGIN, authorizationServers: [ISSUER] } } })).toBe('');
  });
  it('takes an origin only', () => {
    expect(problems({ auth: { jwt: { secret: SECRET, issuer: ISSUER } }, mcp: { protectedResource: { origin: `${ORIGIN}/mcp` } } })).toContain(
      'mcp.protectedResource.origin: an origin only',
    );
  });
});
