import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ANNOTATION, formatChange, injectCompose } from '../src/inject/index.ts';
import { fixture, schemaPorts, settingsFor, type Obj } from './inject-helpers.ts';

const compose = fixture('compose.yaml');
const ports = schemaPorts();
const run = (text: string, service: string | undefined, flags = {}, extra: { uninject?: boolean; configMount?: string } = {}) =>
  injectCompose(text, settingsFor(flags), { source: 'compose.yaml', service, ...extra });

const result = run(compose, 'agent');
const before = parse(compose) as Obj;
const after = parse(result.text) as Obj;

describe('inject --compose', () => {
  it('adds a sidecar service right after the agent, locked down, with its health check on the admin port', () => {
    expect(Object.keys(after.services)).toEqual(['agent', 'agent-sidecar', 'redis', 'worker']);
    const sidecar = after.services['agent-sidecar'];
    expect(sidecar.depends_on).toEqual(['agent']);
    expect(sidecar.read_only).toBe(true);
    expect(sidecar.cap_drop).toEqual(['ALL']);
    expect(sidecar.security_opt).toEqual(['no-new-privileges:true']);
    expect(sidecar.healthcheck.test.join(' ')).toContain(`http://127.0.0.1:${ports.admin}/readyz`);
    // Compose services reach each other by name: the same networks, the same restart policy.
    expect(sidecar.networks).toEqual(before.services.agent.networks);
    expect(sidecar.restart).toBe(before.services.agent.restart);
  });

  it("moves the agent's published port (the label's) to the sidecar's ingress; the other stays", () => {
    expect(after.services['agent-sidecar'].ports).toEqual([`8000:${ports.ingress}`]);
    expect(after.services.agent.ports).toEqual(['127.0.0.1:9000:9000']);
    expect(after.services['agent-sidecar'].environment).toMatchObject({
      SIDECAR_UPSTREAM: 'http://agent:8000',
      SIDECAR_LISTEN: `0.0.0.0:${ports.ingress}`,
      SIDECAR_ADMIN: `0.0.0.0:${ports.admin}`,
      SIDECAR_EGRESS: `0.0.0.0:${ports.egress}`,
    });
  });

  it("wires the agent's environment to the sidecar, keeping what the file set", () => {
    const env = after.services.agent.environment;
    expect(env.ANTHROPIC_BASE_URL).toBe(`http://agent-sidecar:${ports.egress}/anthropic`);
    expect(env.OPENAI_BASE_URL).toBe(`http://agent-sidecar:${ports.egress}/openai/v1`);
    expect(env.OTEL_SERVICE_NAME).toBe(before.services.agent.environment.OTEL_SERVICE_NAME);
    expect(env.ANTHROPIC_API_KEY).toBe(before.services.agent.environment.ANTHROPIC_API_KEY);
    // The sidecar reports under the agent's own service name.
    expect(after.services['agent-sidecar'].environment.OTEL_SERVICE_NAME).toBe(before.services.agent.environment.OTEL_SERVICE_NAME);
    expect(result.changes.map(formatChange)).toContain(
      'document 1 (service/agent): services.agent.environment: kept OTEL_SERVICE_NAME: set in the compose file, not overridden',
    );
  });

  it('long port syntax, a list environment, and a configuration file mounted read-only', () => {
    const out = parse(run(compose, 'worker', {}, { configMount: './sidecar.yaml' }).text) as Obj;
    const sidecar = out.services['worker-sidecar'];
    expect(sidecar.ports).toEqual([{ ...before.services.worker.ports[0], target: ports.ingress }]);
    expect(out.services.worker.ports).toBeUndefined();
    expect(out.services.worker.environment).toEqual([
      ...before.services.worker.environment,
      `ANTHROPIC_BASE_URL=http://worker-sidecar:${ports.egress}/anthropic`,
      `OPENAI_BASE_URL=http://worker-sidecar:${ports.egress}/openai/v1`,
      'OTEL_SERVICE_NAME=worker',
    ]);
    expect(sidecar.volumes).toEqual([`./sidecar.yaml:${sidecar.environment.SIDECAR_CONFIG}:ro`]);
  });

  it('keeps comments and passes the rest of the file through', () => {
    for (const c of compose.split('\n').flatMap((l) => /#\s.*$/.exec(l)?.[0] ?? [])) expect(result.text).toContain(c);
    expect(after.services.redis).toEqual(before.services.redis);
    expect(after.networks).toEqual(before.networks);
    expect(after.name).toBe(before.name);
  });

  it('is idempotent, and uninject gives back the file byte for byte', () => {
    expect(run(result.text, 'agent').text).toBe(result.text);
    expect(run(result.text, undefined, {}, { uninject: true }).text).toBe(compose);
    const both = run(result.text, 'worker').text;
    expect(run(both, undefined, {}, { uninject: true }).text).toBe(compose);
    // Uninject of one service leaves the other's sidecar.
    expect(run(both, 'worker', {}, { uninject: true }).text).toBe(result.text);
  });

  it('records the status on the sidecar; an opt-out label skips the service', () => {
    const status = JSON.parse(after.services['agent-sidecar'].labels[ANNOTATION.status]) as Obj;
    expect(status).toMatchObject({ service: 'agent', env: ['ANTHROPIC_BASE_URL', 'OPENAI_BASE_URL'] });
    const optedOut = compose.replace('agent-sidecar.io/upstream-port: "8000"', 'agent-sidecar.io/inject: "false"');
    expect(run(optedOut, 'agent').text).toBe(optedOut);
  });

  it('the relay label: the sidecar’s OTLP/HTTP receiver on its container’s interfaces (gRPC off), the agent’s SDK pointed at it by service name; uninject takes it back', () => {
    const text = `services:
  agent:
    image: agent:1
    labels:
      agent-sidecar.io/relay: "true"
    ports:
      - "8000:8000"
`;
    const out = run(text, 'agent');
    const doc = parse(out.text) as Obj;
    expect(doc.services['agent-sidecar'].environment).toMatchObject({ SIDECAR_RELAY: 'true', SIDECAR_RELAY_HTTP: '0.0.0.0:4318', SIDECAR_RELAY_GRPC: 'off' });
    expect(doc.services.agent.environment).toMatchObject({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://agent-sidecar:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_PROPAGATORS: 'tracecontext,baggage',
    });
    expect(run(out.text, undefined, {}, { uninject: true }).text).toBe(text);
    // Off by default; a bad value and Kubernetes' instrumentation labels are refused with their place.
    expect(parse(run(text.replace('"true"', '"false"'), 'agent').text).services['agent-sidecar'].environment.SIDECAR_RELAY).toBeUndefined();
    expect(() => run(text.replace('"true"', '"yes"'), 'agent')).toThrow(/agent-sidecar\.io\/relay: expected "true" or "false"/);
    expect(() => run(text.replace('agent-sidecar.io/relay', 'agent-sidecar.io/inject-python'), 'agent')).toThrow(/compose has no init containers/);
  });
});
