// The full stack's agent: the demo agent (src/demo/agent.ts) with the tests' MCP server
// (test/mcp-agent.ts, the official SDK's) on /mcp, one process on one port, so that the
// sidecar's single upstream serves both:
//   node test/e2e/agent-server.ts PORT HOST
import { once } from 'node:events';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDemoAgent } from '../../src/demo/agent.ts';
import { mcpAgent } from '../mcp-agent.ts';

const [port, host] = [Number(process.argv[2]), process.argv[3] ?? '127.0.0.1'];
const agent = createDemoAgent({ tokenDelayMs: Number(process.env.AGENT_TOKEN_DELAY_MS ?? 40) });
// The demo agent answers what the MCP server does not take.
const [demo] = agent.listeners('request') as RequestListener[];
agent.removeAllListeners('request');
agent.on('request', mcpAgent({ '/mcp': true }, demo!).handler);
agent.listen(port, host);
await once(agent, 'listening');
process.stdout.write(`demo agent with MCP on /mcp listening on ${host}:${(agent.address() as AddressInfo).port}\n`);
const stop = () => {
  agent.closeAllConnections();
  agent.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
