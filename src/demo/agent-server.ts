// The demo agent on its own, for docker-compose.yml and the full-stack test:
//   node dist/demo/agent-server.js [PORT] [HOST]    (defaults: AGENT_PORT or 8000, AGENT_HOST or 0.0.0.0)
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createDemoAgent } from './agent.ts';

const port = Number(process.argv[2] ?? process.env.AGENT_PORT ?? 8000);
const host = process.argv[3] ?? process.env.AGENT_HOST ?? '0.0.0.0';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`demo agent: ${process.argv[2] ?? process.env.AGENT_PORT} is not a port\n`);
  process.exit(2);
}
const agent = createDemoAgent({ tokenDelayMs: Number(process.env.AGENT_TOKEN_DELAY_MS ?? 40) });
agent.listen(port, host);
await once(agent, 'listening');
process.stdout.write(`demo agent listening on ${host}:${(agent.address() as AddressInfo).port}\n`);
const stop = () => {
  agent.closeAllConnections();
  agent.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
