// npm run demo: the demo agent behind the sidecar, on embedded defaults, no external service.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../config/index.ts';
import { isSidecarError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { createSidecar } from '../sidecar.ts';
import { createDemoAgent } from './agent.ts';

const agent = createDemoAgent();
agent.listen(0, '127.0.0.1');
await once(agent, 'listening');
const agentPort = (agent.address() as AddressInfo).port;

try {
  // SIDECAR_LISTEN / SIDECAR_ADMIN move the demo to other ports if 8080/9901 are taken.
  const config = loadConfig({ overrides: { upstream: `http://127.0.0.1:${agentPort}`, listen: process.env.SIDECAR_LISTEN ?? '127.0.0.1:8080' } });
  const sidecar = createSidecar({ config, logger: createLogger(config.log.level) });
  const { ingress, admin } = await sidecar.start();
  const base = `http://127.0.0.1:${ingress.port}`;
  process.stdout.write(`
agent-sidecar demo: the demo agent (127.0.0.1:${agentPort}) is behind the sidecar (${base}).
Paste these into another terminal:

  curl -i ${base}/api/v1/agents
  curl -i -X POST ${base}/api/v1/agents -H 'content-type: application/json' -d '{"name":"triage"}'
  curl -N -X POST ${base}/api/v1/chat -H 'content-type: application/json' -d '{"message":"hello"}'
  curl -i ${base}/api/v1/conversations -H 'x-forwarded-for: 6.6.6.6'
  curl -i -X CONNECT ${base} --request-target example.com:443
  curl -s http://127.0.0.1:${admin?.port}/readyz

Ctrl-C stops both.
`);
  const stop = () => {
    void sidecar.shutdown({ drainDelay: 0 }).then(() => {
      agent.closeAllConnections();
      agent.close();
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
} catch (err) {
  agent.close();
  if (isSidecarError(err)) {
    process.stderr.write(`agent-sidecar demo: ${err.message} [${err.code}]\n`);
    process.exitCode = err.code === 'SIDECAR_LISTEN_FAILED' ? 1 : 2;
  } else throw err;
}
