/**
 * uninject gives back the input byte for byte, whatever its style: a property checked over a
 * corpus (the fixtures, the examples, hand-written manifests in the styles people write:
 * flow collections with spaces, comments everywhere, quoted scalars, anchors, null values,
 * several documents) and the variants of each (CRLF line endings, no final line break,
 * both). And injecting leaves the input's own lines alone: only what inject adds is new.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffChars } from 'diff';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { injectCompose, injectManifests, SIDECAR_CONTAINER } from '../src/inject/index.ts';
import { fixture, objects, podSpec, settingsFor, type Obj } from './inject-helpers.ts';

const repo = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'inject-roundtrip-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const configFile = join(dir, 'sidecar.yaml');
writeFileSync(configFile, '# sidecar\nlisten:\n  address: 0.0.0.0:8080\n');

const MANIFESTS: Record<string, string> = {
  'fixture helm-agents.yaml': fixture('helm-agents.yaml'),
  'fixture pod-list.yaml': fixture('pod-list.yaml'),
  'deploy/kubernetes/agent.yaml': repo('deploy/kubernetes/agent.yaml'),
  'flow collections with spaces': `apiVersion: apps/v1
kind: Deployment
metadata: { name: support-agent, labels: { app: support-agent } }
spec:
  selector: { matchLabels: { app: support-agent } }
  template:
    metadata: { labels: { app: support-agent } }
    spec:
      containers: [ { name: agent, image: "agent:1", ports: [ { containerPort: 8000, name: http } ], env: [ ] } ]
      volumes: [ { name: data, emptyDir: { } } ]
---
apiVersion: v1
kind: Service
metadata: { name: support-agent }
spec: { selector: { app: support-agent }, ports: [ { port: 80, targetPort: 'http' } ] }
`,
  'comments, quotes, nulls and block scalars': `# The agent, as written by hand.
apiVersion: apps/v1   # stable
kind: Deployment
metadata:
  name: "support-agent"  # quoted
spec:
  template:
    metadata:
      labels:
        app: 'support-agent'
      annotations:
    spec:
      # containers, the agent first
      containers:
        - name: agent  # main
          image: 'agent:1'
          ports:
            - containerPort: 8000   # http
          # its environment comes from elsewhere
          env:
          args:
            - |
              multi
              line
          command: [ "python", "-m", 'agent' ]
        # - name: disabled
      volumes: ~
# end of the deployment
---
# the Service
apiVersion: v1
kind: Service
metadata:
  name: support-agent
spec:
  selector:
    app: support-agent
  ports:
    - name: web
      port: 80
      targetPort: "8000"   # by number, as a string
    - name: other
      port: 81
...
`,
  'anchors and aliases': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: researcher
  labels: &labels
    app: researcher
spec:
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
    spec:
      containers:
      - &agent
        name: agent
        image: researcher:2
        ports: [{containerPort: 7000}]
        resources: &res {limits: {memory: 1Gi}}
      - name: helper
        image: helper:1
        resources: *res
`,
  'four-space indentation, a CronJob with init containers': `apiVersion: batch/v1
kind: CronJob
metadata:
    name: nightly
spec:
    schedule: "0 0 * * *"
    jobTemplate:
        spec:
            template:
                spec:
                    initContainers:
                        -   name: migrate
                            image: migrate:1
                    containers:
                        -   name: agent
                            image: eval:1
                            ports:
                                -   containerPort: 8000
                    restartPolicy: Never
`,
  'a List with a Pod and a Service without targetPort': `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: scratch, labels: {app: scratch}}
  spec:
    containers: [{name: a, image: x, ports: [{containerPort: 1234}]}]
- apiVersion: v1
  kind: Service
  metadata: {name: scratch}
  spec: {selector: {app: scratch}, ports: [{port: 1234}]}
`,
  'credential custody: the key from the Secret, its envFrom and mount, comments between them': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: support-agent
  annotations:
    agent-sidecar.io/credential-secret: llm-keys
spec:
  template:
    spec:
      securityContext:
        runAsNonRoot: true
      containers:
        - name: agent
          image: agent:1
          ports:
            - containerPort: 8000
          env:
            - name: LOG_LEVEL
              value: info
            # the keys
            - name: ANTHROPIC_API_KEY   # from the Secret
              valueFrom:
                secretKeyRef: { name: llm-keys, key: anthropic-api-key }
            - name: OPENAI_API_KEY
              valueFrom: {secretKeyRef: {name: openai, key: key}}
            - name: TRACE
              value: "1"
          envFrom:
            # all of it
            - secretRef:
                name: llm-keys
          volumeMounts:
            - { name: keys, mountPath: /keys }
      volumes:
        - name: keys
          projected:
            sources:
              - secret: { name: llm-keys }
`,
  'credential custody in flow style, the Secret named by key names': `apiVersion: v1
kind: Pod
metadata: { name: p, annotations: { agent-sidecar.io/credential-secret: llm-keys, agent-sidecar.io/credential-keys: "anthropic=a, openai" } }
spec:
  securityContext: { fsGroup: 3000 }
  containers: [ { name: agent, image: x, ports: [ { containerPort: 9000 } ], env: [ { name: ANTHROPIC_AUTH_TOKEN, valueFrom: { secretKeyRef: { name: llm-keys, key: t } } },  { name: OPENAI_API_KEY, valueFrom: { secretKeyRef: { name: o, key: k } } }, { name: X, value: "1" }, { name: ANTHROPIC_API_KEY } ], envFrom: [ { configMapRef: { name: c } }, { secretRef: { name: llm-keys } } ], volumeMounts: [ { name: k, mountPath: /k } ] } ]
  volumes: [ { name: k, secret: { secretName: llm-keys } } ]
`,
  'a bare Pod, metadata without annotations, empty env list': `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: agent
    image: x
    env: []
    ports:
    - containerPort: 9000
`,
};

const COMPOSE: Record<string, string> = {
  'credential custody: secrets and key variables in both styles': `services:
  agent:
    image: agent:1
    labels: { agent-sidecar.io/credential-keys: "anthropic, openai=openai-key" }
    ports: ["8000:8000"]
    secrets: [ anthropic-api-key, { source: db } ]
    environment:
      # keys
      ANTHROPIC_API_KEY: \${ANTHROPIC_API_KEY}
      LOG: debug
      OPENAI_API_KEY:
    env_file: .env
  worker:
    image: w
    labels:
      agent-sidecar.io/credential-keys: openai=openai-key
    ports: ["7000:7000"]
    secrets:
      - openai-key
    environment:
      - OPENAI_API_KEY
      - "ANTHROPIC_API_KEY=\${ANTHROPIC_API_KEY}"
secrets:
  anthropic-api-key: { environment: ANTHROPIC_API_KEY }
  openai-key: { file: ./openai-key.txt }
  db: { file: ./db.txt }
`,
  'fixture compose.yaml': fixture('compose.yaml'),
  // Its agent is the service demo-agent, which publishes no port (8000, by flag).
  'docker-compose.yml': repo('docker-compose.yml'),
  'flow services': `services:
  agent: { image: "agent:1", ports: [ "8000:8000" ], environment: [ LOG=debug ] }

  db: { image: postgres }
`,
  'the only port moves, environment null': `# compose
services:
  agent:
    image: agent:1
    ports: ['127.0.0.1:8000:8000']   # public
    restart: unless-stopped
    environment:
networks: {}
`,
  'long-form port, one of several in flow': `services:
  agent:
    image: a
    ports: ["9000:9000", "8000:8000", "9100:9100"]
  other:
    image: b
    ports:
    - target: 8000
      published: 8000
`,
};

/** The input as it is, with CRLF line endings, without its final line break, and both. */
function variants(text: string): Array<[string, string]> {
  const crlf = text.replace(/\r?\n/g, '\r\n');
  return [
    ['as is', text],
    ['CRLF', crlf],
    ['no final line break', text.replace(/(\r?\n)+$/, '')],
    ['CRLF, no final line break', crlf.replace(/(\r?\n)+$/, '')],
  ];
}

const cases = <T extends Record<string, string>>(corpus: T) =>
  Object.entries(corpus).flatMap(([name, text]) => variants(text).map(([v, t]) => [`${name} (${v})`, t] as const));

/** How many characters of `before` are not in `after` (a character diff). */
const removedChars = (before: string, after: string) =>
  diffChars(before, after)
    .filter((c) => c.removed)
    .reduce((n, c) => n + c.value.length, 0);

/**
 * What inject may take out of the input: the targetPorts it points at the sidecar and the
 * null values it turns into lists, as its status annotations record them.
 */
function replaceable(out: string): number {
  let n = 0;
  for (const o of objects(out)) {
    for (const meta of [o.metadata, o.spec?.template?.metadata, o.spec?.jobTemplate?.spec?.template?.metadata]) {
      const raw = (meta as Obj | undefined)?.annotations?.['agent-sidecar.io/status'] as string | undefined;
      if (raw === undefined) continue;
      const status = JSON.parse(raw) as {
        ports?: Array<{ targetPort: unknown; raw?: string }>;
        nulls?: Record<string, string>;
        credentials?: { removed: Array<Partial<Record<'raw' | 'text' | 'before' | 'after', string>>> };
      };
      for (const p of status.ports ?? []) n += (p.raw ?? String(p.targetPort ?? '')).length;
      for (const v of Object.values(status.nulls ?? {})) n += v.length;
      // What credential custody took out of the agent, as it was written.
      for (const r of status.credentials?.removed ?? []) n += [r.raw, r.text, r.before, r.after].reduce((m, t) => m + (t?.length ?? 0), 0);
    }
  }
  return n;
}

/** Injects with `flags`, then checks that uninject and a second inject give back the input and the output. */
function roundTrip(input: string, flags: Record<string, unknown>): void {
  const settings = settingsFor(flags);
  const out = injectManifests(input, settings, { source: 'in.yaml' }).text;
  // Something went in: every workload that can be injected has its sidecar.
  const workloads = objects(out).filter((o) => ['Deployment', 'CronJob', 'Pod'].includes(o.kind as string));
  expect(workloads.length).toBeGreaterThan(0);
  for (const w of workloads) {
    const spec = podSpec(w);
    const all = [...((spec.containers as Obj[]) ?? []), ...((spec.initContainers as Obj[] | undefined) ?? [])];
    expect(all.map((c) => c.name)).toContain(SIDECAR_CONTAINER);
  }
  expect(injectManifests(out, settingsFor(), { source: 'in.yaml', uninject: true }).text).toBe(input);
  expect(injectManifests(out, settings, { source: 'in.yaml' }).text).toBe(out);
  // Nothing of the input is rewritten, but for a targetPort pointed at the sidecar, a null value that became a list, and what custody took out.
  expect(removedChars(input, out)).toBeLessThanOrEqual(replaceable(out));
  if (input.includes('\r\n')) expect(out.replace(/\r\n/g, '')).not.toContain('\n');
}

describe('inject / uninject round trip: Kubernetes', () => {
  it.each(cases(MANIFESTS))('%s', (_name, input) => {
    for (const flags of [{}, { nativeSidecar: true }, { configmapFrom: configFile }]) roundTrip(input, flags);
  });
});

describe('inject / uninject round trip: Kubernetes, with credential custody for every workload (--credential-secret)', () => {
  it.each(cases(MANIFESTS))('%s', (_name, input) => roundTrip(input, { credentialSecret: 'agent-keys' }));
});

describe('inject / uninject round trip: compose', () => {
  it.each(cases(COMPOSE))('%s', (name, input) => {
    const ours = name.startsWith('docker-compose.yml');
    const settings = settingsFor(ours ? { upstreamPort: '8000' } : {});
    const service = ours ? 'demo-agent' : 'agent';
    const out = injectCompose(input, settings, { source: 'compose.yaml', service }).text;
    expect(Object.keys((parse(out) as Obj).services)).toContain(`${service}-sidecar`);
    expect(injectCompose(out, settings, { source: 'compose.yaml', uninject: true }).text).toBe(input);
    expect(injectCompose(out, settings, { source: 'compose.yaml', service }).text).toBe(out);
    // A second service with its own sidecar, then both out again.
    if (name.startsWith('credential custody')) {
      const both = injectCompose(out, settings, { source: 'compose.yaml', service: 'worker' }).text;
      expect(injectCompose(both, settings, { source: 'compose.yaml', uninject: true }).text).toBe(input);
    }
    if (input.includes('\r\n')) expect(out.replace(/\r\n/g, '')).not.toContain('\n');
  });
});
