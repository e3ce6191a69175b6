// The demo agent as its own process for the full-stack test: node test/e2e/demo-agent.ts PORT
import { once } from 'node:events';
import { createDemoAgent } from '../../src/demo/agent.ts';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error('usage: demo-agent.ts PORT');
const agent = createDemoAgent({ tokenDelayMs: 5 });
agent.listen(port, '127.0.0.1');
await once(agent, 'listening');
process.once('SIGTERM', () => {
  agent.closeAllConnections();
  agent.close(() => process.exit(0));
});
