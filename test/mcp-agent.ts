/**
 * A real MCP server for the tests: the official TypeScript SDK's McpServer behind its
 * StreamableHTTPServerTransport, stateful (Mcp-Session-Id), on a real HTTP server. Each path
 * answers JSON (enableJsonResponse) or SSE; every message it receives is recorded, so tests can
 * assert what the sidecar forwarded and what it kept back. It imports nothing of the sidecar's,
 * so that a process of its own can serve it too (test/e2e/agent-server.ts).
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

export const TOOLS = ['search_documents', 'delete_document', 'get_weather', 'internal_reindex', 'unlisted_tool'] as const;

function buildServer(): McpServer {
  const server = new McpServer({ name: 'test-agent', version: '1.0.0' });
  const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
  server.registerTool(
    'search_documents',
    { description: 'Search a collection', inputSchema: { collection: z.string(), query: z.string() } },
    ({ collection, query }) => text(`searched ${collection} for ${query}`),
  );
  server.registerTool('delete_document', { description: 'Delete a document', inputSchema: { id: z.string() } }, ({ id }) => text(`deleted ${id}`));
  server.registerTool('get_weather', { description: 'Weather of a city', inputSchema: { city: z.string() } }, ({ city }) => text(`sunny in ${city}`));
  server.registerTool('internal_reindex', { description: 'Reindex everything' }, () => text('reindexed'));
  server.registerTool('unlisted_tool', { description: 'No policy entry names it' }, () => text('ran unlisted'));
  server.registerPrompt('summarize', { description: 'Summarize', argsSchema: { style: z.string() } }, ({ style }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `summarize, ${style}` } }],
  }));
  server.registerResource('readme', 'docs://public/readme', { mimeType: 'text/plain' }, (uri) => ({ contents: [{ uri: uri.href, text: 'public readme' }] }));
  server.registerResource('plan', 'docs://secret/plan', { mimeType: 'text/plain' }, (uri) => ({ contents: [{ uri: uri.href, text: 'secret plan' }] }));
  return server;
}

export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

/**
 * The MCP endpoints as a request handler, for a server of the caller's: `paths` maps each MCP
 * endpoint path to whether it answers JSON (true) or SSE (false); other paths go to
 * `otherwise` (default: 404).
 */
export function mcpAgent(paths: Record<string, boolean>, otherwise: http.RequestListener = (_, res) => void res.writeHead(404).end()) {
  const received: Received[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const handler: http.RequestListener = (req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    const json = paths[path];
    if (json === undefined) {
      otherwise(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handle(req, res, path, json, Buffer.concat(chunks)));
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, path: string, json: boolean, raw: Buffer): Promise<void> {
    const body: unknown = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
    received.push({ path, headers: req.headers, body });
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (transport === undefined) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: json,
        onsessioninitialized: (id) => void sessions.set(id, transport!),
      });
      await buildServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  }

  return {
    handler,
    received,
    /** The tools/call (or other method) messages that reached the agent. */
    calls: (method: string) => received.filter((r) => (r.body as { method?: string } | undefined)?.method === method),
    reset: () => void received.splice(0),
    closeSessions: async () => {
      for (const t of sessions.values()) await t.close().catch(() => {});
    },
  };
}

/** {@link mcpAgent} on its own HTTP server on a free loopback port. */
export async function startMcpAgent(paths: Record<string, boolean>) {
  const { handler, closeSessions, ...agent } = mcpAgent(paths);
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    ...agent,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await closeSessions();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What an SDK client's call came to: 'ok', or the stable code of the sidecar's refusal (else the JSON-RPC code). */
export async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (!(err instanceof McpError)) throw err;
    return (err.data as { code?: string } | undefined)?.code ?? `rpc ${err.code}`;
  }
}
