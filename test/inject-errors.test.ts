import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isSidecarError, type SidecarError, type SidecarErrorCode } from '../src/errors/index.ts';
import { injectCompose, injectManifests, resolveSettings, type InjectFlags } from '../src/inject/index.ts';
import { fixture, schemaPorts, settingsFor } from './inject-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'sidecar-inject-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function failure(fn: () => unknown): SidecarError {
  try {
    fn();
  } catch (err) {
    if (isSidecarError(err)) return err;
    throw err;
  }
  throw new Error('expected a SidecarError, got a result');
}

const inject =
  (text: string, flags: InjectFlags = {}) =>
  () =>
    injectManifests(text, settingsFor(flags), { source: 'in.yaml' });

/** A Service, then a Deployment whose pod template (from `spec:` down) the test writes. */
function manifest(podSpec: string, templateMeta = '      labels:\n        app: agent\n'): string {
  return [
    'apiVersion: v1\nkind: Service\nmetadata:\n  name: agent\nspec:\n  selector:\n    app: agent\n  ports:\n  - port: 80\n    targetPort: http\n',
    `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels:\n      app: agent\n  template:\n    metadata:\n${templateMeta}    spec:\n${podSpec}`,
  ].join('---\n');
}
const agent = (ports: string) => `      containers:\n      - name: agent\n        image: agent:1\n${ports}`;

function expectError(err: SidecarError, code: SidecarErrorCode, field: string, doc = 2): void {
  expect(err.code).toBe(code);
  expect(err.details).toMatchObject({ document: doc, field });
  expect(err.message).toContain(`document ${doc}`);
  expect(err.message).toContain(field);
}

describe('inject: bad input names the document and field, with a stable code', () => {
  it('not YAML: SIDECAR_INJECT_PARSE with the document and line', () => {
    const err = failure(inject('apiVersion: v1\nkind: ConfigMap\n---\nkind: Deployment\nmetadata: [unclosed\n'));
    expect(err.code).toBe('SIDECAR_INJECT_PARSE');
    expect(err.details).toMatchObject({ document: 2 });
    expect(err.message).toMatch(/^in\.yaml:\d+: document 2 is not valid YAML/);
  });

  it('a duplicate key: SIDECAR_INJECT_PARSE', () => {
    expect(failure(inject('kind: Pod\nkind: Deployment\n')).code).toBe('SIDECAR_INJECT_PARSE');
  });

  it('a kind that cannot be injected but asks for it: SIDECAR_INJECT_KIND_UNSUPPORTED', () => {
    const rs = 'apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: agent\n  annotations:\n    agent-sidecar.io/inject: "true"\nspec: {}\n';
    const err = failure(inject(rs));
    expectError(err, 'SIDECAR_INJECT_KIND_UNSUPPORTED', 'kind', 1);
    expect(err.message).toContain('Deployment');
    const crd = 'apiVersion: serving.example.com/v1\nkind: Deployment\nmetadata:\n  name: agent\n  annotations:\n    agent-sidecar.io/inject: "true"\n';
    expect(failure(inject(crd)).code).toBe('SIDECAR_INJECT_KIND_UNSUPPORTED');
  });

  it('the agent container declares no port: SIDECAR_INJECT_PORT_NOT_FOUND at its ports', () => {
    expectError(failure(inject(manifest(agent('')))), 'SIDECAR_INJECT_PORT_NOT_FOUND', 'spec.template.spec.containers[0].ports');
  });

  it('the upstream-port annotation names a port the container lacks: SIDECAR_INJECT_PORT_NOT_FOUND at the annotation', () => {
    const meta = '      labels:\n        app: agent\n      annotations:\n        agent-sidecar.io/upstream-port: web\n';
    const err = failure(inject(manifest(agent('        ports:\n        - name: http\n          containerPort: 8000\n'), meta)));
    expectError(err, 'SIDECAR_INJECT_PORT_NOT_FOUND', 'spec.template.metadata.annotations["agent-sidecar.io/upstream-port"]');
    expect(err.message).toContain('http (8000)');
  });

  it('--upstream-port names a port the container lacks: SIDECAR_INJECT_PORT_NOT_FOUND', () => {
    const err = failure(inject(manifest(agent('        ports:\n        - containerPort: 8000\n')), { upstreamPort: 'grpc' }));
    expectError(err, 'SIDECAR_INJECT_PORT_NOT_FOUND', 'spec.template.spec.containers[0].ports');
  });

  it("the agent's port is one of the sidecar's: SIDECAR_INJECT_INVALID at that containerPort", () => {
    const { ingress } = schemaPorts();
    const err = failure(inject(manifest(agent(`        ports:\n        - containerPort: ${ingress}\n`))));
    expectError(err, 'SIDECAR_INJECT_INVALID', 'spec.template.spec.containers[0].ports[0].containerPort');
    expect(err.message).toContain('--ingress-port');
    // With another ingress port it goes in.
    expect(() => inject(manifest(agent(`        ports:\n        - containerPort: ${ingress}\n`)), { ingressPort: '15001' })()).not.toThrow();
  });

  it('a containerPort that is not a number: SIDECAR_INJECT_INVALID', () => {
    expectError(
      failure(inject(manifest(agent('        ports:\n        - containerPort: http\n')))),
      'SIDECAR_INJECT_INVALID',
      'spec.template.spec.containers[0].ports[0].containerPort',
    );
  });

  it('containers that are not a list, or no containers: SIDECAR_INJECT_INVALID', () => {
    expectError(failure(inject(manifest('      containers: agent\n'))), 'SIDECAR_INJECT_INVALID', 'spec.template.spec.containers');
    expectError(failure(inject(manifest('      containers: []\n'))), 'SIDECAR_INJECT_INVALID', 'spec.template.spec.containers');
  });

  it('a workload without its pod template: SIDECAR_INJECT_INVALID', () => {
    const err = failure(inject('apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: eval\nspec:\n  schedule: "@daily"\n'));
    expectError(err, 'SIDECAR_INJECT_INVALID', 'spec.jobTemplate', 1);
  });

  it('the container annotation names no container: SIDECAR_INJECT_INVALID', () => {
    const meta = '      labels:\n        app: agent\n      annotations:\n        agent-sidecar.io/container: worker\n';
    const err = failure(inject(manifest(agent('        ports:\n        - containerPort: 8000\n'), meta)));
    expectError(err, 'SIDECAR_INJECT_INVALID', 'spec.template.metadata.annotations["agent-sidecar.io/container"]');
  });

  it('an inject annotation other than "true" or "false": SIDECAR_INJECT_INVALID', () => {
    const meta = '      labels:\n        app: agent\n      annotations:\n        agent-sidecar.io/inject: "yes"\n';
    expectError(
      failure(inject(manifest(agent('        ports:\n        - containerPort: 8000\n'), meta))),
      'SIDECAR_INJECT_INVALID',
      'spec.template.metadata.annotations["agent-sidecar.io/inject"]',
    );
  });

  it('a container named agent-sidecar without a status: SIDECAR_INJECT_INVALID, never overwritten', () => {
    const pod = agent('        ports:\n        - containerPort: 8000\n') + '      - name: agent-sidecar\n        image: mine:1\n';
    expectError(failure(inject(manifest(pod))), 'SIDECAR_INJECT_INVALID', 'spec.template.spec.containers[1].name');
  });

  it('a status annotation that does not parse: SIDECAR_INJECT_INVALID, for inject and uninject', () => {
    const meta = "      labels:\n        app: agent\n      annotations:\n        agent-sidecar.io/status: '{broken'\n";
    const text = manifest(agent('        ports:\n        - containerPort: 8000\n'), meta);
    expectError(failure(inject(text)), 'SIDECAR_INJECT_INVALID', 'spec.template.metadata.annotations["agent-sidecar.io/status"]');
    expect(failure(() => injectManifests(text, settingsFor(), { uninject: true })).code).toBe('SIDECAR_INJECT_INVALID');
  });
});

describe('inject: bad credential custody settings', () => {
  const ports = agent('        ports:\n        - containerPort: 8000\n');
  const annotated = (annotations: string) => manifest(ports, `      labels:\n        app: agent\n      annotations:\n${annotations}`);
  const field = (key: string) => `spec.template.metadata.annotations["${key}"]`;

  it('a Secret name that is not one: SIDECAR_INJECT_INVALID at the annotation', () => {
    const err = failure(inject(annotated('        agent-sidecar.io/credential-secret: LLM_keys\n')));
    expectError(err, 'SIDECAR_INJECT_INVALID', field('agent-sidecar.io/credential-secret'));
    expect(err.message).toContain('expected a Secret name');
  });

  it('credential-keys naming an unknown provider, a provider twice, a bad key, or nothing: SIDECAR_INJECT_INVALID at the annotation', () => {
    for (const [keys, problem] of [
      ['gemini=gemini-api-key', '"gemini": not a provider; expected anthropic or openai'],
      ['anthropic,anthropic=other', 'anthropic is named twice'],
      ['anthropic=../etc/passwd', 'expected a key name'],
      ['openai=', 'expected a key name'],
      ['anthropic,,openai', 'an empty entry'],
      ['" "', 'expected providers and their keys'],
    ] as const) {
      const err = failure(inject(annotated(`        agent-sidecar.io/credential-secret: llm-keys\n        agent-sidecar.io/credential-keys: ${keys}\n`)));
      expectError(err, 'SIDECAR_INJECT_INVALID', field('agent-sidecar.io/credential-keys'));
      expect(err.message).toContain(problem);
    }
  });

  it('credential-keys without a Secret: SIDECAR_INJECT_INVALID naming the annotation to add', () => {
    const err = failure(inject(annotated('        agent-sidecar.io/credential-keys: anthropic\n')));
    expectError(err, 'SIDECAR_INJECT_INVALID', field('agent-sidecar.io/credential-keys'));
    expect(err.message).toContain('agent-sidecar.io/credential-secret');
  });

  it('a volume named like the credential volume: SIDECAR_INJECT_INVALID, never overwritten', () => {
    const pod = `${ports}      volumes:\n      - name: agent-sidecar-credentials\n        emptyDir: {}\n`;
    expectError(failure(inject(manifest(pod), { credentialSecret: 'llm-keys' })), 'SIDECAR_INJECT_INVALID', 'spec.template.spec.volumes[0].name');
    // Without custody the name is free.
    expect(() => inject(manifest(pod))()).not.toThrow();
  });

  it('bad --credential-secret or --credential-keys: SIDECAR_USAGE_INVALID', () => {
    expect(failure(() => settingsFor({ credentialSecret: 'LLM-keys' })).code).toBe('SIDECAR_USAGE_INVALID');
    expect(failure(() => settingsFor({ credentialKeys: 'mistral' })).code).toBe('SIDECAR_USAGE_INVALID');
    expect(failure(() => settingsFor({ credentialKeys: '' })).message).toContain('--credential-keys');
  });

  it('compose: a bad credential-keys label, a credential-secret label, or --credential-secret', () => {
    const compose = fixture('compose.yaml');
    const labelled = (label: string) => compose.replace('agent-sidecar.io/upstream-port: "8000"', `agent-sidecar.io/upstream-port: "8000"\n      ${label}`);
    const run =
      (text: string, flags: InjectFlags = {}) =>
      () =>
        injectCompose(text, settingsFor(flags), { source: 'compose.yaml', service: 'agent' });
    expectError(
      failure(run(labelled('agent-sidecar.io/credential-keys: anthropic=a/b'))),
      'SIDECAR_INJECT_INVALID',
      'services.agent.labels["agent-sidecar.io/credential-keys"]',
      1,
    );
    const secret = failure(run(labelled('agent-sidecar.io/credential-secret: llm-keys')));
    expectError(secret, 'SIDECAR_INJECT_INVALID', 'services.agent.labels["agent-sidecar.io/credential-secret"]', 1);
    expect(secret.message).toContain('agent-sidecar.io/credential-keys');
    expect(failure(run(compose, { credentialSecret: 'llm-keys' })).code).toBe('SIDECAR_USAGE_INVALID');
  });
});

describe('inject: bad settings', () => {
  it('a port flag out of range, or two sidecar ports alike: SIDECAR_USAGE_INVALID', () => {
    expect(failure(() => settingsFor({ ingressPort: '0' })).code).toBe('SIDECAR_USAGE_INVALID');
    expect(failure(() => settingsFor({ adminPort: '70000' })).code).toBe('SIDECAR_USAGE_INVALID');
    expect(failure(() => settingsFor({ egressPort: String(schemaPorts().admin) })).code).toBe('SIDECAR_USAGE_INVALID');
    expect(failure(() => settingsFor({ upstreamPort: 'Not A Port' })).code).toBe('SIDECAR_USAGE_INVALID');
    expect(failure(() => settingsFor({ otelEndpoint: 'collector:4317' })).code).toBe('SIDECAR_USAGE_INVALID');
    expect(failure(() => settingsFor({ configmapName: 'Agent_Sidecar' })).code).toBe('SIDECAR_USAGE_INVALID');
    expect(failure(() => settingsFor({ image: 'agent sidecar' })).code).toBe('SIDECAR_USAGE_INVALID');
  });

  it('--configmap-from runs the loader `run` uses: its codes, and port 0 refused', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'upstream:\n  ulr: http://x\n');
    expect(failure(() => settingsFor({ configmapFrom: bad })).code).toBe('SIDECAR_CONFIG_INVALID');
    expect(failure(() => settingsFor({ configmapFrom: join(dir, 'missing.yaml') })).code).toBe('SIDECAR_CONFIG_UNREADABLE');
    const secret = join(dir, 'secret.yaml');
    writeFileSync(secret, 'auth:\n  jwt:\n    secret: ${env:JWT_SECRET}\n');
    expect(failure(() => resolveSettings({ configmapFrom: secret }, {})).code).toBe('SIDECAR_CONFIG_ENV_MISSING');
    const zero = join(dir, 'zero.yaml');
    writeFileSync(zero, 'listen:\n  address: 0.0.0.0:0\n');
    expect(failure(() => settingsFor({ configmapFrom: zero })).code).toBe('SIDECAR_USAGE_INVALID');
  });
});

describe('inject --compose: bad input', () => {
  const compose = fixture('compose.yaml');
  const run = (text: string, service?: string) => () => injectCompose(text, settingsFor(), { source: 'compose.yaml', service });

  it('no services mapping: SIDECAR_INJECT_INVALID', () => {
    expectError(failure(run('version: "3"\n', 'agent')), 'SIDECAR_INJECT_INVALID', 'services', 1);
  });

  it('an unknown service: SIDECAR_INJECT_INVALID naming the services there are', () => {
    const err = failure(run(compose, 'agnet'));
    expectError(err, 'SIDECAR_INJECT_INVALID', 'services.agnet', 1);
    expect(err.message).toContain('agent, redis, worker');
  });

  it('a service without a port: SIDECAR_INJECT_PORT_NOT_FOUND', () => {
    expectError(failure(run(compose, 'redis')), 'SIDECAR_INJECT_PORT_NOT_FOUND', 'services.redis.ports', 1);
  });

  it('not YAML: SIDECAR_INJECT_PARSE', () => {
    expect(failure(run('services:\n  agent: {image: x\n', 'agent')).code).toBe('SIDECAR_INJECT_PARSE');
  });

  it('a service named like the sidecar without a status, or a status that does not parse: SIDECAR_INJECT_INVALID', () => {
    expectError(failure(run(compose.replace('  redis:', '  agent-sidecar:'), 'agent')), 'SIDECAR_INJECT_INVALID', 'services.agent-sidecar', 1);
    const broken = compose.replace('  redis:\n', "  redis:\n    labels:\n      agent-sidecar.io/status: '[1]'\n");
    expectError(failure(run(broken, 'agent')), 'SIDECAR_INJECT_INVALID', 'services.redis.labels["agent-sidecar.io/status"]', 1);
  });
});
