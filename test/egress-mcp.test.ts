import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryAudit } from '../src/audit/index.ts';
import { validateConfig } from '../src/config/index.ts';
import { createEgress, type Egress } from '../src/egress/index.ts';
import { createLogger } from '../src/log/index.ts';
import { startMcpAgent, outcome } from './mcp-agent.ts';
import { thrownBy } from './thrown.ts';

/**
 * The agent's own MCP servers behind the egress listener: the official SDK's server as the
 * remote MCP server, its client as the agent's, pointed at /mcp/<name>.
 */
let server: Awaited<ReturnType<typeof startMcpAgent>>;
let egress: Egress;
let url: string;
const audit = createMemoryAudit();
const clients: Client[] = [];

beforeAll(async () => {
  server = await startMcpAgent({ '/json': true, '/sse': false });
  const config = validateConfig({
    egress: {
      allowHttp: true,
      mcpServers: {
        docs: { origin: server.url, tools: ['search_*', 'get_weather'], headers: { Authorization: 'Bearer server-token' } },
        closed: { origin: server.url, route: '/tools/closed', tools: [] },
      },
    },
  });
  const logger = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
  egress = createEgress(config, logger, { agentType: 'mcp-egress-test', audit });
  egress.server.listen(0, '127.0.0.1');
  await once(egress.server, 'listening');
  url = `http://127.0.0.1:${(egress.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => {});
  egress?.destroyAll();
  egress?.server.close();
  await egress?.close();
  await server?.close();
});

async function connect(path: string): Promise<Client> {
  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}${path}`), { requestInit: { headers: { authorization: 'Bearer agent-own' } } }));
  clients.push(client);
  return client;
}

describe.each([
  ['JSON', '/mcp/docs/json'],
  ['SSE', '/mcp/docs/sse'],
])('an MCP server answering %s', (_mode, path) => {
  it.each([
    ['search_documents', { collection: 'c', query: 'q' }, 'ok'],
    ['get_weather', { city: 'Oslo' }, 'ok'],
    ['delete_document', { id: 'd1' }, 'SIDECAR_TOOL_NOT_ALLOWED'],
    ['internal_reindex', {}, 'SIDECAR_TOOL_NOT_ALLOWED'],
  ] as const)('calling %s %j: %s, and a refused call never reaches the server', async (name, args, expected) => {
    const client = await connect(path);
    server.reset();
    expect(await outcome(client.callTool({ name, arguments: args }))).toBe(expected);
    expect(server.calls('tools/call')).toHaveLength(expected === 'ok' ? 1 : 0);
  });

  it('shows the model only the allowed tools in tools/list', async () => {
    const client = await connect(path);
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['get_weather', 'search_documents']);
  });
});

describe('the MCP egress route', () => {
  it('answers a refused call as JSON-RPC invalid params with the code and server in error.data', async () => {
    const client = await connect('/mcp/docs/json');
    let error: McpError | undefined;
    await client.callTool({ name: 'delete_document', arguments: { id: 'x' } }).catch((e: unknown) => (error = e as McpError));
    expect(error?.code).toBe(-32602);
    expect(error?.data).toMatchObject({ code: 'SIDECAR_TOOL_NOT_ALLOWED', tool: 'delete_document', server: 'docs' });
  });

  it('audits every tools/call, allowed or refused, with the tool and the server', async () => {
    const client = await connect('/mcp/docs/json');
    audit.events.splice(0);
    await client.callTool({ name: 'get_weather', arguments: { city: 'Oslo' } });
    await outcome(client.callTool({ name: 'delete_document', arguments: { id: 'x' } }));
    await client.listTools();
    expect(audit.events).toEqual([
      expect.objectContaining({ event_type: 'authorization', egress_peer: 'docs', mcp_method: 'tools/call', mcp_name: 'get_weather', allowed: true }),
      expect.objectContaining({
        egress_peer: 'docs',
        mcp_name: 'delete_document',
        allowed: false,
        reason: 'SIDECAR_TOOL_NOT_ALLOWED',
        action: 'egress.mcpServers.docs.tools',
        route: '/mcp/docs',
      }),
    ]);
  });

  it('sends the configured headers in place of the agent’s own', async () => {
    server.reset();
    const client = await connect('/mcp/docs/json');
    await client.callTool({ name: 'get_weather', arguments: { city: 'Oslo' } });
    expect(server.calls('tools/call')[0]!.headers.authorization).toBe('Bearer server-token');
  });

  it('with telemetry off, records nothing and passes the agent’s traceparent on as it came', async () => {
    server.reset();
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const client = new Client({ name: 'agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp/docs/json`), { requestInit: { headers: { traceparent } } }));
    clients.push(client);
    await client.callTool({ name: 'get_weather', arguments: { city: 'Oslo' } });
    expect(server.calls('tools/call')[0]!.headers.traceparent).toBe(traceparent);
  });

  it('allows no tool when the allowlist is empty, and lists none', async () => {
    const client = await connect('/tools/closed/json');
    server.reset();
    expect(await outcome(client.callTool({ name: 'get_weather', arguments: { city: 'Oslo' } }))).toBe('SIDECAR_TOOL_NOT_ALLOWED');
    expect((await client.listTools()).tools).toEqual([]);
    // initialize, notifications and the rest pass as they are.
    expect(server.calls('tools/call')).toHaveLength(0);
  });

  it('refuses what it cannot judge: a batch, a compressed body, a tools/call without a name, a body on GET', async () => {
    const post = async (body: string, headers: Record<string, string> = {}) => {
      const res = await request(`${url}/mcp/docs/json`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      });
      return { status: res.statusCode, json: (await res.body.json()) as { error: { code: number; data: { code: string } } } };
    };
    server.reset();
    const call = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_document"}}';
    expect((await post(`[${call}]`)).json.error.data.code).toBe('SIDECAR_MCP_BATCH_REFUSED');
    expect((await post(call, { 'content-encoding': 'gzip' })).json.error.data.code).toBe('SIDECAR_MCP_PARSE_ERROR');
    expect((await post('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}}')).json.error).toMatchObject({ code: -32602 });
    expect((await post('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_weather","name":"delete_document"}}')).json.error.data.code).toBe(
      'SIDECAR_MCP_DUPLICATE_KEY',
    );
    const get = await request(`${url}/mcp/docs/json`, { method: 'GET', body: call, headers: { 'content-type': 'application/json' } });
    expect(get.statusCode).toBe(400);
    await get.body.dump();
    expect(server.received).toHaveLength(0);
  });

  it('still answers 404 under a path no provider or peer has', async () => {
    const res = await request(`${url}/mcp/other/json`, { method: 'POST', body: '{}' });
    expect(res.statusCode).toBe(404);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_EGRESS_ROUTE_UNKNOWN');
  });
});

describe('egress.mcpServers and egress.agents configuration', () => {
  const problems = (egressConfig: Record<string, unknown>) =>
    (thrownBy(() => validateConfig({ egress: egressConfig })).details as { problems: string[] }).problems.join('\n');

  it('requires a tool allowlist, and an origin without a path', () => {
    expect(problems({ mcpServers: { a: { origin: 'https://mcp.example.com' } } })).toMatch(/^egress\.mcpServers\.a\.tools:/m);
    expect(problems({ mcpServers: { a: { origin: 'https://mcp.example.com/mcp', tools: [] } } })).toMatch(/^egress\.mcpServers\.a\.origin:/m);
  });

  it('refuses routes that overlap a provider or another peer, and http:// without allowHttp', () => {
    expect(problems({ mcpServers: { a: { origin: 'https://x.example', route: '/anthropic/mcp', tools: [] } } })).toMatch(/^egress\.mcpServers\.a\.route:/m);
    expect(
      problems({ mcpServers: { a: { origin: 'https://x.example', tools: [] } }, agents: { b: { origin: 'https://y.example', route: '/mcp/a' } } }),
    ).toMatch(/^egress\.agents\.b\.route:/m);
    expect(problems({ agents: { b: { origin: 'http://y.example' } } })).toMatch(/^egress\.agents\.b\.origin:.*allowHttp/m);
  });

  it('knows the A2A methods of both revisions, and refuses a misspelt one', () => {
    expect(() => validateConfig({ egress: { agents: { b: { origin: 'https://y.example', methods: ['message/send', 'GetTask'] } } } })).not.toThrow();
    expect(problems({ agents: { b: { origin: 'https://y.example', methods: ['message/sned'] } } })).toMatch(/^egress\.agents\.b\.methods\.0:/m);
  });

  it('refuses hop-by-hop headers and header values that would split a request', () => {
    expect(problems({ agents: { b: { origin: 'https://y.example', headers: { Host: 'x' } } } })).toMatch(/^egress\.agents\.b\.headers/m);
    expect(problems({ agents: { b: { origin: 'https://y.example', headers: { 'X-Key': 'a\r\nEvil: 1' } } } })).toMatch(/^egress\.agents\.b\.headers/m);
  });
});
