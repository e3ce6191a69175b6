/**
 * Credential custody through inject: the Secret (compose: the secrets) with the provider
 * keys goes to the sidecar only, the agent loses every way to the keys and gets the
 * placeholder, and uninject puts back what it took.
 */
import { Deployment } from 'kubernetes-models/apps/v1';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/index.ts';
import { ANNOTATION, formatChange, injectCompose, injectManifests, SIDECAR_CONTAINER } from '../src/inject/index.ts';
import { container, envOf, find, podSpec, settingsFor, type Obj } from './inject-helpers.ts';

const PLACEHOLDER = 'held-by-agent-sidecar';

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: support-agent
  namespace: agents
spec:
  selector:
    matchLabels:
      app: support-agent
  template:
    metadata:
      labels:
        app: support-agent
      annotations:
        agent-sidecar.io/credential-secret: llm-keys
    spec:
      containers:
        - name: agent
          image: registry.example.com/support-agent:1.4.0
          ports:
            - name: http
              containerPort: 8000
          env:
            - name: LOG_LEVEL
              value: info
            # The key, from the Secret the sidecar now holds.
            - name: ANTHROPIC_API_KEY
              valueFrom:
                secretKeyRef:
                  name: llm-keys
                  key: anthropic-api-key
          envFrom:
            - secretRef:
                name: llm-keys
            - configMapRef:
                name: agent-settings
          volumeMounts:
            - name: keys
              mountPath: /etc/keys
              readOnly: true
            - name: cache
              mountPath: /cache
      volumes:
        - name: keys
          secret:
            secretName: llm-keys
        - name: cache
          emptyDir: {}
`;

const inject = (text: string, flags = {}) => injectManifests(text, settingsFor(flags), { source: 'in.yaml' });
const uninject = (text: string) => injectManifests(text, settingsFor(), { source: 'in.yaml', uninject: true });

const result = inject(DEPLOYMENT);
const out = result.text;
const report = result.changes.map(formatChange);
const spec = podSpec(find(out, 'Deployment', 'support-agent'));
const agent = container(spec, 'agent')!;
const sidecar = container(spec, SIDECAR_CONTAINER)!;

/** The sidecar's configuration as it loads in the container: its file's defaults and its environment. */
const sidecarConfig = (c: Obj) =>
  loadConfig({ env: Object.fromEntries(((c.env ?? []) as Obj[]).filter((e) => typeof e.value === 'string').map((e) => [e.name, e.value as string])) });

describe('inject with credential custody: Kubernetes', () => {
  it("takes the key's env entry and the Secret's envFrom away from the agent, and gives it the placeholder", () => {
    const env = agent.env as Obj[];
    expect(env.filter((e) => e.valueFrom?.secretKeyRef?.name === 'llm-keys')).toEqual([]);
    expect(envOf(agent).ANTHROPIC_API_KEY).toBe(PLACEHOLDER);
    expect(envOf(agent).OPENAI_API_KEY).toBe(PLACEHOLDER);
    expect(env.filter((e) => e.name === 'ANTHROPIC_API_KEY')).toHaveLength(1);
    expect(envOf(agent).LOG_LEVEL).toBe('info');
    expect(agent.envFrom).toEqual([{ configMapRef: { name: 'agent-settings' } }]);
    // The agent's own mount of the Secret goes; its other mounts stay.
    expect(agent.volumeMounts).toEqual([{ name: 'cache', mountPath: '/cache' }]);
  });

  it('mounts the whole Secret read-only in the sidecar only, mode 0440, and points its providers at the files', () => {
    const volume = (spec.volumes as Obj[]).find((v) => v.secret?.secretName === 'llm-keys' && v.name !== 'keys')!;
    expect(volume.secret).toEqual({ secretName: 'llm-keys', defaultMode: 0o440 });
    expect(out).toContain('defaultMode: 288 # 0440');
    const mounts = (c: Obj) => ((c.volumeMounts ?? []) as Obj[]).filter((m) => m.name === volume.name);
    expect(mounts(sidecar)).toEqual([{ name: volume.name, mountPath: '/var/run/secrets/llm', readOnly: true }]);
    for (const c of spec.containers as Obj[]) if (c.name !== SIDECAR_CONTAINER) expect(mounts(c)).toEqual([]);
    const config = sidecarConfig(sidecar);
    expect(config.egress.providers.anthropic.credential).toEqual({ file: '/var/run/secrets/llm/anthropic-api-key' });
    expect(config.egress.providers.openai.credential).toEqual({ file: '/var/run/secrets/llm/openai-api-key' });
  });

  it("the sidecar's variables replace a credential its configuration file gives", () => {
    const base = { egress: { providers: { anthropic: { credential: { env: 'SIDECAR_ANTHROPIC_API_KEY' } } } } };
    const config = loadConfig({ base, env: { SIDECAR_ANTHROPIC_CREDENTIAL_FILE: '/var/run/secrets/llm/anthropic-api-key' } });
    expect(config.egress.providers.anthropic.credential).toEqual({ file: '/var/run/secrets/llm/anthropic-api-key' });
    expect(loadConfig({ base, env: {} }).egress.providers.anthropic.credential).toEqual({ env: 'SIDECAR_ANTHROPIC_API_KEY' });
  });

  it('sets the pod fsGroup to the sidecar user when there is none, and keeps one that is there with a note', () => {
    expect(spec.securityContext).toEqual({ fsGroup: 1000 });
    const own = DEPLOYMENT.replace('    spec:\n      containers:', '    spec:\n      securityContext:\n        fsGroup: 2000\n      containers:');
    const res = inject(own);
    expect(podSpec(find(res.text, 'Deployment', 'support-agent')).securityContext).toEqual({ fsGroup: 2000 });
    expect(res.changes.map(formatChange).some((l) => l.includes('securityContext.fsGroup: note: kept fsGroup 2000'))).toBe(true);
    expect(uninject(res.text).text).toBe(own);
  });

  it('reports each removal, naming where the value came from', () => {
    const lines = report.filter((l) => l.includes('removed') || l.includes('placeholder') || l.includes(PLACEHOLDER));
    expect(lines).toContain(
      'document 1 (Deployment/support-agent): spec.template.spec.containers[0].env[1]: removed ANTHROPIC_API_KEY (from Secret llm-keys, key anthropic-api-key): the sidecar holds the anthropic key',
    );
    expect(lines).toContain(
      'document 1 (Deployment/support-agent): spec.template.spec.containers[0].envFrom[0]: removed secretRef llm-keys: the Secret is for the sidecar only',
    );
    expect(lines).toContain(
      'document 1 (Deployment/support-agent): spec.template.spec.containers[0].volumeMounts[0]: removed the mount of volume keys at /etc/keys: it holds Secret llm-keys, which is for the sidecar only',
    );
    expect(lines).toContain(
      `document 1 (Deployment/support-agent): spec.template.spec.containers[0].env: added ANTHROPIC_API_KEY=${PLACEHOLDER}: the sidecar holds the key`,
    );
  });

  it('is idempotent, and uninject puts back what it took, byte for byte', () => {
    expect(inject(out).text).toBe(out);
    expect(uninject(out).text).toBe(DEPLOYMENT);
    const back = uninject(out).changes.map(formatChange);
    expect(back).toContain('document 1 (Deployment/support-agent): spec.template.spec.containers[0].env[1]: put back ANTHROPIC_API_KEY');
  });

  it('injecting again without the annotation takes custody out with the rest of the earlier injection', () => {
    const annotated = DEPLOYMENT.replace('      annotations:\n', '      annotations:\n        agent-sidecar.io/upstream-port: http\n');
    const without = (text: string) => text.replace('        agent-sidecar.io/credential-secret: llm-keys\n', '');
    expect(inject(without(inject(annotated).text)).text).toBe(inject(without(annotated)).text);
  });

  it('the result passes the Kubernetes OpenAPI schema', () => {
    expect(() => new Deployment(find(out, 'Deployment', 'support-agent') as never).validate()).not.toThrow();
  });

  it('credential-keys: only the providers named are held, from the keys named', () => {
    const text = DEPLOYMENT.replace(
      'agent-sidecar.io/credential-secret: llm-keys',
      'agent-sidecar.io/credential-secret: llm-keys\n        agent-sidecar.io/credential-keys: openai=openai',
    ).replace(
      '            - name: LOG_LEVEL',
      '            - name: OPENAI_API_KEY\n              valueFrom:\n                secretKeyRef: {name: openai-key, key: key}\n            - name: LOG_LEVEL',
    );
    const res = inject(text).text;
    const s = podSpec(find(res, 'Deployment', 'support-agent'));
    const a = container(s, 'agent')!;
    // Anthropic is not held, so it gets no placeholder; but its entry read the Secret, which is the sidecar's alone now: it goes.
    expect((a.env as Obj[]).find((e) => e.name === 'ANTHROPIC_API_KEY')).toBeUndefined();
    expect((a.env as Obj[]).filter((e) => e.name === 'OPENAI_API_KEY')).toEqual([{ name: 'OPENAI_API_KEY', value: PLACEHOLDER }]);
    const config = sidecarConfig(container(s, SIDECAR_CONTAINER)!);
    expect(config.egress.providers.openai.credential).toEqual({ file: '/var/run/secrets/llm/openai' });
    expect(config.egress.providers.anthropic.credential).toBeUndefined();
    expect(uninject(res).text).toBe(text);
  });

  it('a provider not held keeps its variable; the flags set custody for every workload, an annotation wins', () => {
    const plain = DEPLOYMENT.replace('      annotations:\n        agent-sidecar.io/credential-secret: llm-keys\n', '').replace(
      '            - name: LOG_LEVEL',
      '            - name: OPENAI_API_KEY\n              valueFrom:\n                secretKeyRef: {name: openai-key, key: key}\n            - name: LOG_LEVEL',
    );
    const res = inject(plain, { credentialSecret: 'provider-keys', credentialKeys: 'anthropic' }).text;
    const s = podSpec(find(res, 'Deployment', 'support-agent'));
    const a = container(s, 'agent')!;
    expect((a.env as Obj[]).find((e) => e.name === 'OPENAI_API_KEY')).toEqual({
      name: 'OPENAI_API_KEY',
      valueFrom: { secretKeyRef: { name: 'openai-key', key: 'key' } },
    });
    expect(envOf(a).ANTHROPIC_API_KEY).toBe(PLACEHOLDER);
    // llm-keys is not the Secret held here: the agent keeps its envFrom and mount of it.
    expect(a.envFrom).toHaveLength(2);
    expect((s.volumes as Obj[]).find((v) => v.secret?.secretName === 'provider-keys')).toBeDefined();
    expect(envOf(container(s, SIDECAR_CONTAINER)!).SIDECAR_OPENAI_CREDENTIAL_FILE).toBeUndefined();
    expect(uninject(res).text).toBe(plain);
  });

  it('a key written into the manifest is taken out and never copied; uninject says it cannot put it back', () => {
    const literal = DEPLOYMENT.replace(
      '            - name: LOG_LEVEL',
      '            - name: OPENAI_API_KEY\n              value: sk-proj-written-in-the-manifest\n            - name: LOG_LEVEL',
    );
    const res = inject(literal);
    expect(res.text).not.toContain('sk-proj-written-in-the-manifest');
    expect(res.changes.map(formatChange).some((l) => l.includes('env[0]: removed OPENAI_API_KEY') && l.includes('cannot put it back'))).toBe(true);
    expect(inject(res.text).text).toBe(res.text);
    const back = uninject(res.text);
    // Everything else is back as it was.
    expect(back.text).toBe(DEPLOYMENT);
    expect(back.changes.map(formatChange).some((l) => l.includes('note: OPENAI_API_KEY is not put back'))).toBe(true);
  });

  it('a native sidecar gets the mount too; Anthropic bearer tokens and any variable from the Secret go', () => {
    const text = DEPLOYMENT.replace(
      '            - name: LOG_LEVEL',
      '            - name: ANTHROPIC_AUTH_TOKEN\n              valueFrom:\n                secretKeyRef: {name: other, key: token}\n            - name: MY_KEY\n              valueFrom:\n                secretKeyRef: {name: llm-keys, key: other}\n            - name: LOG_LEVEL',
    );
    const res = inject(text, { nativeSidecar: true }).text;
    const s = podSpec(find(res, 'Deployment', 'support-agent'));
    const names = ((container(s, 'agent')!.env as Obj[]) ?? []).map((e) => e.name);
    expect(names).not.toContain('ANTHROPIC_AUTH_TOKEN');
    expect(names).not.toContain('MY_KEY');
    const init = container(s, SIDECAR_CONTAINER, 'initContainers')!;
    expect((init.volumeMounts as Obj[]).map((m) => m.mountPath)).toContain('/var/run/secrets/llm');
    expect(uninject(res).text).toBe(text);
  });

  it('records what it took in the status annotation, without values', () => {
    const status = JSON.parse(find(out, 'Deployment', 'support-agent').spec.template.metadata.annotations[ANNOTATION.status] as string) as Obj;
    expect(status.credentials).toMatchObject({ secret: 'llm-keys', fsGroup: true, lost: [] });
    expect((status.credentials.removed as Obj[]).map((r) => r.from)).toEqual(['env', 'envFrom', 'volumeMounts']);
  });
});

const COMPOSE = `services:
  agent:
    image: registry.example.com/support-agent:dev
    labels:
      agent-sidecar.io/credential-keys: anthropic,openai=openai-key
    ports:
      - "8000:8000"
    secrets:
      - anthropic-api-key
      - source: db-password
    environment:
      ANTHROPIC_API_KEY: \${ANTHROPIC_API_KEY}   # from .env
      OPENAI_API_KEY:
      LOG_LEVEL: info
  worker:
    image: registry.example.com/worker:dev
    ports: ["7000:7000"]
    secrets: [openai-key]
    environment: ["OPENAI_API_KEY=\${OPENAI_API_KEY}", QUEUE=default]

secrets:
  anthropic-api-key:
    environment: ANTHROPIC_API_KEY
  openai-key:
    file: ./openai-key.txt
  db-password:
    file: ./db-password.txt
`;

describe('inject --compose with credential custody', () => {
  const run = (text: string, service: string | undefined, flags = {}, uninject = false) =>
    injectCompose(text, settingsFor(flags), { source: 'compose.yaml', service, uninject });
  const res = run(COMPOSE, 'agent');
  const after = parse(res.text) as Obj;

  it('lists the secrets under the sidecar only and points its providers at them', () => {
    const s = after.services['agent-sidecar'];
    expect(s.secrets).toEqual(['anthropic-api-key', 'openai-key']);
    expect(after.services.agent.secrets).toEqual([{ source: 'db-password' }]);
    const config = loadConfig({ env: s.environment as Record<string, string> });
    expect(config.egress.providers.anthropic.credential).toEqual({ file: '/run/secrets/anthropic-api-key' });
    expect(config.egress.providers.openai.credential).toEqual({ file: '/run/secrets/openai-key' });
  });

  it("takes the key variables out of the agent's environment and gives it the placeholder", () => {
    const env = after.services.agent.environment as Obj;
    expect(env).toMatchObject({ ANTHROPIC_API_KEY: PLACEHOLDER, OPENAI_API_KEY: PLACEHOLDER, LOG_LEVEL: 'info' });
    const report = res.changes.map(formatChange);
    expect(report).toContain('document 1 (service/agent): services.agent.secrets[0]: removed anthropic-api-key: the sidecar holds it');
    expect(report).toContain(
      'document 1 (service/agent): services.agent.environment.ANTHROPIC_API_KEY: removed ANTHROPIC_API_KEY: the sidecar holds the anthropic key',
    );
  });

  it('is idempotent, and uninject gives the file back byte for byte', () => {
    expect(run(res.text, 'agent').text).toBe(res.text);
    expect(run(res.text, undefined, {}, true).text).toBe(COMPOSE);
  });

  it('--credential-keys, a list environment and a flow list of secrets that empties', () => {
    const worker = run(COMPOSE, 'worker', { credentialKeys: 'openai=openai-key' });
    const w = parse(worker.text) as Obj;
    expect(w.services.worker.secrets).toBeUndefined();
    expect(w.services.worker.environment).toEqual([
      'QUEUE=default',
      'ANTHROPIC_BASE_URL=http://worker-sidecar:8081/anthropic',
      'OPENAI_BASE_URL=http://worker-sidecar:8081/openai/v1',
      'OTEL_SERVICE_NAME=worker',
      `OPENAI_API_KEY=${PLACEHOLDER}`,
    ]);
    expect(w.services['worker-sidecar'].secrets).toEqual(['openai-key']);
    expect(run(worker.text, 'worker', { credentialKeys: 'openai=openai-key' }).text).toBe(worker.text);
    expect(run(worker.text, undefined, {}, true).text).toBe(COMPOSE);
  });

  it('a key written into the compose file is taken out and never copied', () => {
    const literal = COMPOSE.replace('      OPENAI_API_KEY:\n', '      OPENAI_API_KEY: sk-proj-written-in-the-file\n');
    const injected = run(literal, 'agent');
    expect(injected.text).not.toContain('sk-proj-written-in-the-file');
    expect(run(injected.text, 'agent').text).toBe(injected.text);
    const back = run(injected.text, undefined, {}, true);
    expect(back.text).toBe(COMPOSE.replace('      OPENAI_API_KEY:\n', ''));
    expect(back.changes.map(formatChange).some((l) => l.includes('note: OPENAI_API_KEY is not put back'))).toBe(true);
  });

  it('a secret the file does not define gets a note', () => {
    const report = run(COMPOSE, 'worker', { credentialKeys: 'anthropic' }).changes.map(formatChange);
    expect(report.filter((l) => l.includes('note: this file defines no secret'))).toEqual([]);
    const missing = run(COMPOSE, 'worker', { credentialKeys: 'anthropic=anthropic-key' }).changes.map(formatChange);
    expect(missing.some((l) => l.includes('note: this file defines no secret anthropic-key'))).toBe(true);
  });
});
