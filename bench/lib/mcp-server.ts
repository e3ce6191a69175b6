// The MCP server of `npm run bench:mcp`, run as its own process:
//   node bench/lib/mcp-server.ts <host:port>
// The official SDK's McpServer behind its StreamableHTTPServerTransport, stateless (no
// Mcp-Session-Id) and answering JSON (enableJsonResponse), at POST /mcp, with one trivial tool.
// Stateless, the SDK wants a new transport for every request (a transport refuses a second one)
// and a server connected to one transport at a time. Its stateless example builds a new McpServer
// per request too, which costs about 0.4 ms of CPU here (registering the tool and its schema):
// more than the sidecar's hop, and on a small machine it would make the server the bottleneck
// of every target. So a server is closed with its request's transport and kept for the next
// request (the SDK allows connect after close); as many exist as requests were ever in flight at
// once. That cost is the server's, the same for every target. GET /healthz answers 200.
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const [address = '127.0.0.1:0'] = process.argv.slice(2);
const i = address.lastIndexOf(':');

function buildServer(): McpServer {
  const server = new McpServer({ name: 'bench-mcp', version: '1.0.0' });
  server.registerTool(
    'search_documents',
    { description: 'Search a collection', inputSchema: { collection: z.string(), query: z.string() } },
    ({ collection, query }) => ({ content: [{ type: 'text' as const, text: `3 documents in ${collection} match ${query}` }] }),
  );
  return server;
}

const idle: McpServer[] = [];

async function handle(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): Promise<void> {
  const server = idle.pop() ?? buildServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.once('close', () => {
    void server.close().then(() => idle.push(server));
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, JSON.parse(raw.toString('utf8')));
}

const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.end('ok\n');
    return;
  }
  if (req.method !== 'POST' || req.url !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks)).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
});
server.listen(Number(address.slice(i + 1)), address.slice(0, i));
