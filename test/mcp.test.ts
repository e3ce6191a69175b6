/**
 * MCP routes end to end: the official MCP SDK's client calls through the real sidecar to the
 * SDK's server (stateful, sessions), answered in JSON and in SSE, on revisions 2025-06-18 and
 * 2025-11-25; raw HTTP for what the SDK will not send (malformed, batches, oversized, too deep).
 * Assertions are on stable codes, on what the agent received and on the audit records.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSidecar } from './helpers.ts';
import { startMcpAgent, outcome } from './mcp-agent.ts';

const SECRET = 'mcp-test-secret-of-at-least-32-characters!';
const METHODS = { POST: 'use:mcp', GET: 'use:mcp', DELETE: 'use:mcp' };
const RULES = {
  default: 'deny',
  tools: {
    search_documents: ['call:search_any', { permission: 'call:search', arguments: { collection: ['public', 'research'] } }],
    'delete_*': 'manage:documents',
    get_weather: 'call:weather',
    internal_reindex: 'manage:documents',
  },
  prompts: { summarize: 'call:weather' },
  resources: { 'docs://public/*': 'read:public', 'docs://*': 'read:docs' },
  hidden: ['internal_*'],
};
const POLICY = {
  roles: {
    admin: ['use:mcp', 'call:search_any', 'manage:documents', 'call:weather', 'read:public', 'read:docs'],
    analyst: ['use:mcp', 'call:search', 'call:weather', 'read:public'],
    user: ['use:mcp', 'call:weather'],
    outsider: ['view:nothing'],
  },
  routes: [
    { path: '/mcp', methods: METHODS, mcp: RULES },
    { path: '/mcp-json', methods: METHODS, mcp: RULES },
    { path: '/mcp-dry', methods: METHODS, mcp: { ...RULES, dryRun: true } },
    { path: '/mcp-open', methods: METHODS, mcp: { tools: { 'delete_*': 'manage:documents' } } },
    { path: '/api/plain', methods: { POST: 'use:mcp' } },
  ],
};

type Role = 'admin' | 'analyst' | 'user' | 'outsider';
let agent: Awaited<ReturnType<typeof startMcpAgent>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let dir: string;
const clients: Client[] = [];

const token = (role: Role) =>
  new SignJWT({ roles: [role] }).setProtectedHeader({ alg: 'HS256' }).setSubject(`${role}-1`).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

/** Asks for 2025-06-18 in initialize (the SDK asks for its latest, 2025-11-25); the server agrees, and the client then sends that revision. */
const askFor =
  (version: string): FetchLike =>
  (url, init) => {
    if (typeof init?.body === 'string' && init.body.includes('"initialize"'))
      init = { ...init, body: init.body.replace(/"protocolVersion":"[^"]+"/, `"protocolVersion":"${version}"`) };
    return fetch(url, init);
  };

async function connect(path: string, role: Role, version?: string): Promise<Client> {
  const client = new Client({ name: 'mcp-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${sidecar.url}${path}`), {
    requestInit: { headers: { authorization: `Bearer ${await token(role)}` } },
    fetch: version === undefined ? undefined : askFor(version),
  });
  await client.connect(transport);
  clients.push(client);
  return client;
}

async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}, role: Role = 'admin') {
  const res = await request(`${sidecar.url}${path}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${await token(role)}`, ...headers },
  });
  const text = await res.body.text();
  let json: { id?: unknown; error?: { code: number; data?: Record<string, unknown> }; result?: unknown } | undefined;
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

beforeAll(async () => {
  agent = await startMcpAgent({ '/mcp': false, '/mcp-json': true, '/mcp-dry': false, '/mcp-open': true });
  dir = mkdtempSync(join(tmpdir(), 'mcp-policy-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, stringify(POLICY));
  sidecar = await startSidecar({
    upstream: { url: agent.url },
    auth: { jwt: { secret: SECRET } },
    policy: { file: policyFile },
    mcp: { maxMessageBytes: '2kb', maxDepth: 16 },
  });
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await sidecar?.close();
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.each([
  ['SSE answers, 2025-11-25', '/mcp', undefined],
  ['JSON answers, 2025-11-25', '/mcp-json', undefined],
  ['SSE answers, 2025-06-18', '/mcp', '2025-06-18'],
  ['JSON answers, 2025-06-18', '/mcp-json', '2025-06-18'],
])('the SDK client through the sidecar (%s)', (_, path, version) => {
  it('negotiates the revision and keeps its session', async () => {
    agent.reset();
    const client = await connect(path, 'user', version);
    await client.ping();
    const last = agent.received.at(-1)!;
    expect(last.headers['mcp-protocol-version']).toBe(version ?? '2025-11-25');
    expect(last.headers['mcp-session-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    ['admin', 'delete_document', { id: 'd1' }, 'ok'],
    ['analyst', 'delete_document', { id: 'd1' }, 'SIDECAR_TOOL_FORBIDDEN'],
    ['admin', 'search_documents', { collection: 'secret', query: 'q' }, 'ok'],
    ['analyst', 'search_documents', { collection: 'public', query: 'q' }, 'ok'],
    ['analyst', 'search_documents', { collection: 'research', query: 'q' }, 'ok'],
    ['analyst', 'search_documents', { collection: 'secret', query: 'q' }, 'SIDECAR_ARGUMENTS_FORBIDDEN'],
    ['user', 'search_documents', { collection: 'public', query: 'q' }, 'SIDECAR_TOOL_FORBIDDEN'],
    ['analyst', 'unlisted_tool', {}, 'SIDECAR_MCP_NOT_ALLOWED'],
    ['admin', 'unlisted_tool', {}, 'SIDECAR_MCP_NOT_ALLOWED'],
    ['admin', 'internal_reindex', {}, 'ok'],
    ['user', 'get_weather', { city: 'Oslo' }, 'ok'],
  ] as const)('%s calling %s %j: %s', async (role, name, args, expected) => {
    const client = await connect(path, role, version);
    agent.reset();
    expect(await outcome(client.callTool({ name, arguments: args }))).toBe(expected);
    // A refused call never reaches the agent.
    expect(agent.calls('tools/call')).toHaveLength(expected === 'ok' ? 1 : 0);
  });

  it.each([
    ['admin', ['delete_document', 'get_weather', 'search_documents']],
    ['analyst', ['get_weather', 'search_documents']],
    ['user', ['get_weather']],
  ] as const)('tools/list shows %s only what it may call', async (role, expected) => {
    const client = await connect(path, role, version);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(expected);
  });

  it('authorizes resources and prompts, and filters their lists', async () => {
    const analyst = await connect(path, 'analyst', version);
    expect(await outcome(analyst.readResource({ uri: 'docs://public/readme' }))).toBe('ok');
    expect(await outcome(analyst.readResource({ uri: 'docs://secret/plan' }))).toBe('SIDECAR_RESOURCE_FORBIDDEN');
    expect((await analyst.listResources()).resources.map((r) => r.uri)).toEqual(['docs://public/readme']);
    expect(await outcome(analyst.getPrompt({ name: 'summarize', arguments: { style: 'short' } }))).toBe('ok');
    const outsiderless = await connect(path, 'admin', version);
    expect((await outsiderless.listResources()).resources.map((r) => r.uri).sort()).toEqual(['docs://public/readme', 'docs://secret/plan']);
  });
});

describe('refusals as the spec names them', () => {
  it('answers a refused call as a JSON-RPC error with the code in error.data, on HTTP 200, and audits it with the tool name', async () => {
    const client = await connect('/mcp-json', 'analyst');
    let error: McpError | undefined;
    await client.callTool({ name: 'delete_document', arguments: { id: 'x' } }).catch((e: unknown) => (error = e as McpError));
    expect(error?.code).toBe(-32602);
    expect(error?.data).toMatchObject({ code: 'SIDECAR_TOOL_FORBIDDEN', tool: 'delete_document', permission: 'manage:documents' });
    const audit = sidecar.logs.lines.filter((l) => l.event_type === 'authorization' && l.mcp_name === 'delete_document' && l.user_id === 'analyst-1');
    expect(audit.at(-1)).toMatchObject({
      allowed: false,
      dry_run: false,
      reason: 'SIDECAR_TOOL_FORBIDDEN',
      mcp_method: 'tools/call',
      action: 'manage:documents',
      route: '/mcp-json',
    });
  });

  it('still needs the route permission first', async () => {
    const res = await post('/mcp-json', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), {}, 'outsider');
    expect(res.status).toBe(403);
    expect((res.json as unknown as { error: { code: string } }).error.code).toBe('SIDECAR_FORBIDDEN');
  });

  it.each([
    ['malformed JSON', '{"jsonrpc":"2.0","id":1,', 400, -32700, 'SIDECAR_MCP_PARSE_ERROR'],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), 400, -32700, 'SIDECAR_MCP_PARSE_ERROR'],
    ['not JSON-RPC 2.0', '{"id":1,"method":"tools/list"}', 400, -32600, 'SIDECAR_MCP_INVALID_REQUEST'],
    ['a null id', '{"jsonrpc":"2.0","id":null,"method":"tools/list"}', 400, -32600, 'SIDECAR_MCP_INVALID_REQUEST'],
    ['a batch', '[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', 400, -32600, 'SIDECAR_MCP_BATCH_REFUSED'],
    [
      'an oversized message',
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(3000) } }),
      413,
      -32600,
      'SIDECAR_MCP_MESSAGE_TOO_LARGE',
    ],
    [
      'a too deep message',
      `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":${'['.repeat(20)}${']'.repeat(20)}}}`,
      400,
      -32600,
      'SIDECAR_MCP_MESSAGE_TOO_DEEP',
    ],
    [
      'a duplicated tool name',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","name":"delete_document","arguments":{}}}',
      400,
      -32600,
      'SIDECAR_MCP_DUPLICATE_KEY',
    ],
    ['an escaped duplicate', '{"jsonrpc":"2.0","id":1,"method":"ping","\\u006dethod":"x"}', 400, -32600, 'SIDECAR_MCP_DUPLICATE_KEY'],
    ['a tools/call without a name', '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}', 200, -32602, 'SIDECAR_MCP_INVALID_REQUEST'],
  ])('%s: HTTP %i, JSON-RPC %i, %s; nothing forwarded', async (_, body, status, rpcCode, code) => {
    agent.reset();
    const res = await post('/mcp-json', body);
    expect(res.status).toBe(status);
    expect(res.json?.error?.code).toBe(rpcCode);
    expect(res.json?.error?.data?.code).toBe(code);
    expect(agent.received).toHaveLength(0);
  });

  it('authorizes a notification that names a tool as a request, refused with 403', async () => {
    agent.reset();
    const res = await post(
      '/mcp-json',
      JSON.stringify({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'delete_document', arguments: {} } }),
      {},
      'analyst',
    );
    expect(res.status).toBe(403);
    expect(res.json?.id).toBeUndefined();
    expect(res.json?.error?.data?.code).toBe('SIDECAR_TOOL_FORBIDDEN');
    expect(agent.received).toHaveLength(0);
  });

  it('refuses a body on another method than POST, which it would not read', async () => {
    agent.reset();
    const res = await request(`${sidecar.url}/mcp-json`, {
      method: 'DELETE',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'delete_document' } }),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await token('analyst')}` },
    });
    expect(res.statusCode).toBe(400);
    expect(((await res.body.json()) as { error: { data: { code: string } } }).error.data.code).toBe('SIDECAR_MCP_INVALID_REQUEST');
    expect(agent.received).toHaveLength(0);
  });

  it('refuses a revision it cannot authorize', async () => {
    const res = await post('/mcp-json', '{"jsonrpc":"2.0","id":1,"method":"ping"}', { 'mcp-protocol-version': '2099-01-01' });
    expect(res.status).toBe(400);
    expect(res.json?.error).toMatchObject({ code: -32022, data: { code: 'SIDECAR_MCP_VERSION_UNSUPPORTED', requested: '2099-01-01' } });
  });

  it('refuses a compressed message, which it cannot read', async () => {
    const res = await post('/mcp-json', Buffer.from('not really gzip'), { 'content-encoding': 'gzip' });
    expect(res.json?.error?.data?.code).toBe('SIDECAR_MCP_PARSE_ERROR');
  });

  it('forwards the bytes it authorized, unchanged', async () => {
    const client = await connect('/mcp-json', 'admin');
    agent.reset();
    await client.callTool({ name: 'get_weather', arguments: { city: 'Bergen' } });
    expect(agent.calls('tools/call')[0]!.body).toMatchObject({ params: { name: 'get_weather', arguments: { city: 'Bergen' } } });
  });

  it('leaves routes without an mcp: block alone: their bodies are not read', async () => {
    agent.reset();
    const res = await post('/api/plain', '{not json at all');
    // The agent's own 404 (it serves no /api/plain), not a refusal by the sidecar.
    expect(res.status).toBe(404);
    expect(res.json).toBeUndefined();
  });
});

describe('default allow and dry run', () => {
  it('a route without default: deny lets what it does not name through, and lists it', async () => {
    const user = await connect('/mcp-open', 'user');
    expect(await outcome(user.callTool({ name: 'unlisted_tool', arguments: {} }))).toBe('ok');
    expect(await outcome(user.callTool({ name: 'delete_document', arguments: { id: 'x' } }))).toBe('SIDECAR_TOOL_FORBIDDEN');
    expect((await user.listTools()).tools.map((t) => t.name).sort()).toEqual(['get_weather', 'internal_reindex', 'search_documents', 'unlisted_tool']);
  });

  it('dry run lets would-be refusals through, audited as such; lists keep all but the hidden', async () => {
    const analyst = await connect('/mcp-dry', 'analyst');
    agent.reset();
    expect(await outcome(analyst.callTool({ name: 'delete_document', arguments: { id: 'x' } }))).toBe('ok');
    expect(agent.calls('tools/call')).toHaveLength(1);
    const audit = sidecar.logs.lines.filter((l) => l.event_type === 'authorization' && l.route === '/mcp-dry' && l.mcp_name === 'delete_document');
    expect(audit.at(-1)).toMatchObject({ allowed: false, dry_run: true, reason: 'SIDECAR_TOOL_FORBIDDEN' });
    expect((await analyst.listTools()).tools.map((t) => t.name).sort()).toEqual(['delete_document', 'get_weather', 'search_documents', 'unlisted_tool']);
  });
});
