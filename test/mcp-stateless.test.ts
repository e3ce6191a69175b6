/**
 * The stateless revision 2026-07-28 (no session, no GET stream, server/discover, Mcp-Method and
 * Mcp-Name headers), which the SDK does not speak yet: a raw HTTP client and a raw agent that
 * follow the specification's Streamable HTTP text. Data protection on the same route rewrites
 * what the MCP stage authorized and what its list filter left.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, startSidecar } from './helpers.ts';

const SECRET = 'mcp-test-secret-of-at-least-32-characters!';
const VERSION = '2026-07-28';
const META = {
  'io.modelcontextprotocol/protocolVersion': VERSION,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
const TOOLS = [
  { name: 'get_weather', description: 'Weather; questions to ops@example.com', inputSchema: { type: 'object' } },
  { name: 'delete_document', description: 'Delete', inputSchema: { type: 'object' } },
];

let agent: Awaited<ReturnType<typeof startServer>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let dir: string;
const received: Array<{ method: string; headers: Record<string, unknown>; body: Record<string, unknown> | undefined }> = [];

/** A stateless MCP server as the 2026-07-28 transport describes it: POST only, each answer JSON or an SSE stream scoped to the request. */
function serve(msg: { id: number; method: string; params?: { arguments?: Record<string, unknown> } }): { sse: boolean; messages: unknown[] } {
  const respond = (result: unknown) => ({ jsonrpc: '2.0', id: msg.id, result: { resultType: 'complete', ...(result as object) } });
  switch (msg.method) {
    case 'server/discover':
      return {
        sse: false,
        messages: [
          respond({
            supportedVersions: [VERSION],
            capabilities: { tools: {} },
            _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'raw-agent', version: '1' } },
          }),
        ],
      };
    case 'tools/list':
      return {
        sse: true,
        messages: [{ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } }, respond({ tools: TOOLS })],
      };
    case 'tools/call':
      return { sse: false, messages: [respond({ content: [{ type: 'text', text: `called with ${JSON.stringify(msg.params?.arguments)}` }] })] };
    default:
      return { sse: false, messages: [{ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'Method not found' } }] };
  }
}

const token = (role: string) =>
  new SignJWT({ roles: [role] }).setProtectedHeader({ alg: 'HS256' }).setSubject(role).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

async function call(message: Record<string, unknown>, headers: Record<string, string> = {}, role = 'analyst') {
  const params = message.params as Record<string, unknown> | undefined;
  const name = params?.name ?? params?.uri;
  const res = await request(`${sidecar.url}/mcp`, {
    method: 'POST',
    body: JSON.stringify({ jsonrpc: '2.0', ...message }),
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${await token(role)}`,
      'mcp-protocol-version': VERSION,
      ...(typeof message.method === 'string' ? { 'mcp-method': message.method } : {}),
      ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
      ...headers,
    },
  });
  const text = await res.body.text();
  const type = String(res.headers['content-type']);
  // One SSE data line per event here; the last message is the response.
  const messages = type.startsWith('text/event-stream')
    ? text
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>)
    : text === ''
      ? []
      : [JSON.parse(text) as Record<string, unknown>];
  return {
    status: res.statusCode,
    type,
    messages,
    last: messages.at(-1) as { result?: Record<string, unknown>; error?: { code: number; data?: { code?: string } } } | undefined,
  };
}

beforeAll(async () => {
  agent = await startServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST' }).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: number; method: string };
      received.push({ method: body.method, headers: req.headers, body });
      const { sse, messages } = serve(body);
      if (!sse) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(messages[0]));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'x-accel-buffering': 'no' });
      for (const m of messages) res.write(`event: message\ndata: ${JSON.stringify(m)}\n\n`);
      res.end();
    });
  });
  dir = mkdtempSync(join(tmpdir(), 'mcp-stateless-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    stringify({
      roles: { admin: ['use:mcp', 'manage:documents'], analyst: ['use:mcp'] },
      routes: [
        {
          path: '/mcp',
          methods: { POST: 'use:mcp', GET: 'use:mcp' },
          mcp: { default: 'deny', tools: { get_weather: 'use:mcp', 'delete_*': 'manage:documents' }, rpc: { 'server/discover': 'use:mcp' } },
        },
      ],
    }),
  );
  sidecar = await startSidecar({
    upstream: { url: agent.url },
    auth: { jwt: { secret: SECRET } },
    policy: { file: policy },
    protection: { routes: [{ path: '/mcp' }] },
  });
});

afterAll(async () => {
  await sidecar?.close();
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('MCP 2026-07-28 (stateless) through the sidecar', () => {
  it('passes server/discover, with no session id either way', async () => {
    const res = await call({ id: 'd1', method: 'server/discover', params: { _meta: META } });
    expect(res.status).toBe(200);
    expect(res.last?.result).toMatchObject({ supportedVersions: [VERSION] });
    expect(received.at(-1)!.headers['mcp-session-id']).toBeUndefined();
  });

  it('filters a tools/list answered as an SSE stream, event by event, and data protection rewrites what is left', async () => {
    const res = await call({ id: 2, method: 'tools/list', params: { _meta: META } });
    expect(res.type).toMatch(/^text\/event-stream/);
    expect(res.messages[0]).toMatchObject({ method: 'notifications/progress' });
    const tools = (res.last?.result?.tools ?? []) as Array<{ name: string; description: string }>;
    expect(tools.map((t) => t.name)).toEqual(['get_weather']);
    expect(tools[0]!.description).not.toContain('ops@example.com');
    const admin = await call({ id: 3, method: 'tools/list', params: { _meta: META } }, {}, 'admin');
    expect(((admin.last?.result?.tools ?? []) as Array<{ name: string }>).map((t) => t.name)).toEqual(['get_weather', 'delete_document']);
  });

  it('authorizes tools/call on the raw body, then data protection rewrites what is forwarded', async () => {
    const res = await call({
      id: 4,
      method: 'tools/call',
      params: { name: 'get_weather', arguments: { city: 'Oslo', email: 'bob@example.com' }, _meta: META },
    });
    expect(res.status).toBe(200);
    expect(res.last?.result).toBeDefined();
    const forwarded = received.at(-1)!.body as { params: { arguments: Record<string, string> } };
    expect(forwarded.params.arguments.city).toBe('Oslo');
    expect(forwarded.params.arguments.email).not.toBe('bob@example.com');
  });

  it('refuses a forbidden tool with a JSON-RPC error on HTTP 200', async () => {
    const before = received.length;
    const res = await call({ id: 5, method: 'tools/call', params: { name: 'delete_document', arguments: {}, _meta: META } });
    expect(res.status).toBe(200);
    expect(res.last?.error).toMatchObject({ code: -32602, data: { code: 'SIDECAR_TOOL_FORBIDDEN' } });
    expect(received.length).toBe(before);
  });

  it('accepts an Mcp-Name in the Base64 form', async () => {
    const name = `=?base64?${Buffer.from('get_weather').toString('base64')}?=`;
    const res = await call({ id: 6, method: 'tools/call', params: { name: 'get_weather', arguments: {}, _meta: META } }, { 'mcp-name': name });
    expect(res.last?.result).toBeDefined();
  });

  it.each([
    [
      'an Mcp-Name naming another tool',
      { id: 7, method: 'tools/call', params: { name: 'delete_document', arguments: {}, _meta: META } },
      { 'mcp-name': 'get_weather' },
    ],
    ['an Mcp-Method naming another method', { id: 8, method: 'tools/call', params: { name: 'get_weather', _meta: META } }, { 'mcp-method': 'tools/list' }],
    [
      'a body revision other than the header',
      { id: 9, method: 'tools/list', params: { _meta: { ...META, 'io.modelcontextprotocol/protocolVersion': '2025-11-25' } } },
      {},
    ],
  ])('refuses %s: 400, -32020 HeaderMismatch; nothing forwarded', async (_, message, headers) => {
    const before = received.length;
    const res = await call(message, headers);
    expect(res.status).toBe(400);
    expect(res.last?.error).toMatchObject({ code: -32020, data: { code: 'SIDECAR_MCP_HEADER_MISMATCH' } });
    expect(received.length).toBe(before);
  });

  it('refuses a request without Mcp-Method, and a JSON-RPC response, which 2026-07-28 clients never send', async () => {
    const res = await request(`${sidecar.url}/mcp`, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'tools/list', params: { _meta: META } }),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await token('analyst')}`, 'mcp-protocol-version': VERSION },
    });
    expect(res.statusCode).toBe(400);
    expect(((await res.body.json()) as { error: { data: { code: string } } }).error.data.code).toBe('SIDECAR_MCP_HEADER_MISMATCH');
    const response = await call({ id: 11, result: {} });
    expect(response.status).toBe(400);
    expect(response.last?.error).toMatchObject({ code: -32600, data: { code: 'SIDECAR_MCP_INVALID_REQUEST' } });
  });

  it('passes GET on to the agent, whose 405 says there is no stream in this revision', async () => {
    const res = await request(`${sidecar.url}/mcp`, {
      headers: { authorization: `Bearer ${await token('analyst')}`, accept: 'text/event-stream', 'mcp-protocol-version': VERSION },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(405);
  });
});
