// npm run demo: the demo agent behind the sidecar, on embedded defaults, no external service.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { issueToken } from '../auth/index.ts';
import { loadConfig } from '../config/index.ts';
import { isSidecarError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { DEFAULT_POLICY } from '../policy/index.ts';
import { assembleSidecar } from '../sidecar.ts';
import { createDemoAgent } from './agent.ts';

const agent = createDemoAgent();
agent.listen(0, '127.0.0.1');
await once(agent, 'listening');
const agentPort = (agent.address() as AddressInfo).port;

try {
  // A fresh signing secret per run: tokens below are valid for this demo process only.
  const secret = randomBytes(32).toString('base64url');
  const otlp = demoOtlp(process.env);
  const config = loadConfig({
    overrides: { upstream: `http://127.0.0.1:${agentPort}`, listen: process.env.SIDECAR_LISTEN ?? '127.0.0.1:8080' },
    base: {
      auth: { jwt: { secret, algorithms: ['HS256'] }, refresh: { enabled: true } },
      policy: { file: fileURLToPath(new URL('../../config/demo-policy.yaml', import.meta.url)) },
      audit: { stdout: false },
      // /metrics and the access records always; OTLP export only to a collector someone named.
      telemetry: { enabled: true, traces: { enabled: otlp.traces }, metrics: { otlp: otlp.metrics }, logs: { otlp: otlp.logs, stdout: true } },
    },
  });
  const sidecar = await assembleSidecar(config, createLogger(config.log.level));
  const { ingress, admin } = await sidecar.start();
  const base = `http://127.0.0.1:${ingress.port}`;

  const tokens: Record<string, string> = {};
  for (const role of Object.keys(DEFAULT_POLICY.roles))
    tokens[role] = await issueToken(secret, { sub: `demo-${role}`, roles: [role], type: 'access' }, 60 * 60_000);
  const allowed = await fetch(`${base}/api/v1/agents`, { headers: { authorization: `Bearer ${tokens.analyst}` } });
  const denied = await fetch(`${base}/api/v1/agents`, { headers: { authorization: `Bearer ${tokens.user}` } });
  const deniedBody = (await denied.json()) as { error: { code: string; permission?: string } };
  await allowed.arrayBuffer();

  process.stdout.write(`
agent-sidecar demo: the demo agent (127.0.0.1:${agentPort}) is behind the sidecar (${base}).
JWT auth (HS256, a secret made for this run) and the default RBAC policy are on.

Tokens, one per role (valid 60 minutes):
${Object.entries(tokens)
  .map(([role, t]) => `  ${role.padEnd(15)} ${t}`)
  .join('\n')}

Just now: analyst GET /api/v1/agents -> ${allowed.status}; user GET /api/v1/agents -> ${denied.status} ${deniedBody.error.code} (needs ${deniedBody.error.permission}).

Paste these into another terminal:

  ANALYST=${tokens.analyst}
  curl -i ${base}/api/v1/agents -H "authorization: Bearer $ANALYST"
  curl -i ${base}/api/v1/agents -H "authorization: Bearer ${tokens.user}"
  curl -i -X POST ${base}/api/v1/agents -H "authorization: Bearer ${tokens.agent_manager}" -H 'content-type: application/json' -d '{"name":"triage"}'
  curl -N -X POST ${base}/api/v1/chat -H "authorization: Bearer ${tokens.admin}" -H 'content-type: application/json' -d '{"message":"hello"}'
  curl -i ${base}/api/v1/agents
  curl -i ${base}/health
  curl -s http://127.0.0.1:${admin?.port}/readyz
  curl -s http://127.0.0.1:${admin?.port}/metrics      # Prometheus: agent_requests_total, agent_request_duration_seconds, …

${telemetryLine(otlp, sidecar.telemetry.describe, `http://127.0.0.1:${admin?.port}/metrics`)}

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

/**
 * The demo needs no external service, so it exports OTLP only where a collector is named:
 * each signal whose OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT, is
 * set (undefined: the usual defaults and variables decide); the rest is off.
 */
function demoOtlp(env: NodeJS.ProcessEnv): { traces: false | undefined; metrics: false | undefined; logs: false | undefined } {
  const off = (signal: string) => (env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`] || env.OTEL_EXPORTER_OTLP_ENDPOINT ? undefined : false);
  return { traces: off('TRACES'), metrics: off('METRICS'), logs: off('LOGS') };
}

/** One line: where the demo's telemetry goes. */
function telemetryLine(otlp: ReturnType<typeof demoOtlp>, describe: string, metricsUrl: string): string {
  const exported = Object.values(otlp).some((v) => v === undefined);
  const otlpPart = exported
    ? describe.replace(/^otlp /, 'OTLP export to ').replace(/; \/metrics on admin$/, '')
    : 'OTLP export off (set OTEL_EXPORTER_OTLP_ENDPOINT to send it to a collector)';
  return `Telemetry: /metrics on the admin listener (${metricsUrl}); ${otlpPart}; one access record per request as a JSON line below.`;
}
