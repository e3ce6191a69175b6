import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ANNOTATION, formatChange, injectManifests, PORT_NAME, SIDECAR_CONTAINER } from '../src/inject/index.ts';
import { version } from '../src/version.ts';
import { chunks, container, envOf, find, fixture, objects, podSpec, schemaPorts, settingsFor, type Obj } from './inject-helpers.ts';

const helm = fixture('helm-agents.yaml');
const list = fixture('pod-list.yaml');
const ports = schemaPorts();
const dir = mkdtempSync(join(tmpdir(), 'sidecar-inject-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const inject = (text: string, flags = {}) => injectManifests(text, settingsFor(flags), { source: 'in.yaml' });
const uninject = (text: string) => injectManifests(text, settingsFor(), { source: 'in.yaml', uninject: true });
const injected = inject(helm);
const out = injected.text;
const report = injected.changes.map(formatChange);

describe('inject: Kubernetes workloads', () => {
  it.each([
    ['Deployment', 'router', 8000],
    ['StatefulSet', 'researcher', 7000],
    ['CronJob', 'nightly-eval', 8000],
    ['Job', 'backfill', 8000],
  ])('adds the sidecar to a %s: ports from the schema, probes on the admin port, locked down, config from a ConfigMap', (kind, name, upstream) => {
    const spec = podSpec(find(out, kind, name));
    const sidecar = container(spec, SIDECAR_CONTAINER)!;
    expect(sidecar.ports).toEqual([
      { name: PORT_NAME.ingress, containerPort: ports.ingress, protocol: 'TCP' },
      { name: PORT_NAME.egress, containerPort: ports.egress, protocol: 'TCP' },
      { name: PORT_NAME.admin, containerPort: ports.admin, protocol: 'TCP' },
    ]);
    expect(sidecar.livenessProbe.httpGet).toEqual({ path: '/healthz', port: PORT_NAME.admin });
    expect(sidecar.readinessProbe.httpGet).toEqual({ path: '/readyz', port: PORT_NAME.admin });
    expect(sidecar.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(sidecar.resources.requests).toBeDefined();
    const env = envOf(sidecar);
    expect(env.SIDECAR_UPSTREAM).toBe(`http://127.0.0.1:${upstream}`);
    expect(env.SIDECAR_LISTEN).toBe(`0.0.0.0:${ports.ingress}`);
    expect(env.SIDECAR_ADMIN).toBe(`0.0.0.0:${ports.admin}`);
    const mount = (sidecar.volumeMounts as Obj[])[0]!;
    expect(env.SIDECAR_CONFIG?.startsWith(`${mount.mountPath}/`)).toBe(true);
    const volume = (spec.volumes as Obj[]).find((v) => v.name === mount.name)!;
    expect(volume.configMap.name).toBe(name === 'researcher' ? 'researcher-sidecar' : 'agent-sidecar');
  });

  it('the image defaults to this version; the image annotation overrides it', () => {
    expect(container(podSpec(find(out, 'Deployment', 'router')), SIDECAR_CONTAINER)!.image).toBe(`agent-sidecar:${version}`);
    expect(container(podSpec(find(out, 'StatefulSet', 'researcher')), SIDECAR_CONTAINER)!.image).toBe('registry.example.com/agent-sidecar:0.1.0-hardened');
  });

  it("wires the agent (kubectl's default container, not the first) and keeps what the manifest set", () => {
    const before = podSpec(find(helm, 'Deployment', 'router'));
    const spec = podSpec(find(out, 'Deployment', 'router'));
    expect(container(spec, 'log-shipper')).toEqual(container(before, 'log-shipper'));
    const env = envOf(container(spec, 'router')!);
    expect(env.ANTHROPIC_BASE_URL).toBe(`http://127.0.0.1:${ports.egress}/anthropic`);
    expect(env.OPENAI_BASE_URL).toBe(envOf(container(before, 'router')!).OPENAI_BASE_URL);
    expect(env.OTEL_SERVICE_NAME).toBe('router');
    expect(env.LOG_DIR).toBe('/var/log/router');
    expect(report).toContain('document 3 (Deployment/router): spec.template.spec.containers[1].env: kept OPENAI_BASE_URL: set in the manifest, not overridden');
    expect(container(spec, 'router')!.volumeMounts).toEqual(container(before, 'router')!.volumeMounts);
    expect((spec.volumes as Obj[])[0]).toEqual((before.volumes as Obj[])[0]);
  });

  it('the upstream-port annotation picks a named port other than the first', () => {
    const env = envOf(container(podSpec(find(out, 'StatefulSet', 'researcher')), SIDECAR_CONTAINER)!);
    expect(env.SIDECAR_UPSTREAM).toBe('http://127.0.0.1:7000');
  });

  it('an agent with envFrom: its variables are left, and the report says that the added ones win', () => {
    const researcher = container(podSpec(find(out, 'StatefulSet', 'researcher')), 'researcher')!;
    expect(researcher.envFrom).toEqual([{ secretRef: { name: 'researcher-keys' } }]);
    expect(report.some((l) => l.startsWith('document 5 (StatefulSet/researcher): spec.template.spec.containers[0].envFrom: note:'))).toBe(true);
  });

  it('rewrites the targetPort of matching Services (numbered and named), and only those ports', () => {
    const router = find(out, 'Service', 'router');
    expect(router.spec.ports.map((p: Obj) => p.targetPort)).toEqual([PORT_NAME.ingress, 'metrics']);
    expect(find(out, 'Service', 'researcher').spec.ports[0].targetPort).toBe(PORT_NAME.ingress);
    expect(report).toContain(
      `document 2 (Service/router): spec.ports[0].targetPort: 8000 -> ${PORT_NAME.ingress} (traffic for document 3 (Deployment/router) enters through its sidecar)`,
    );
    expect(report).toContain(
      `document 4 (Service/researcher): spec.ports[0].targetPort: api -> ${PORT_NAME.ingress} (traffic for document 5 (StatefulSet/researcher) enters through its sidecar)`,
    );
  });

  it('passes documents it does not handle, and opted-out workloads, through byte for byte', () => {
    const [a, b] = [chunks(helm), chunks(out)];
    expect(b).toHaveLength(a.length);
    for (const kind of ['ServiceAccount', 'DaemonSet', 'Ingress']) {
      const i = a.findIndex((c) => c.includes(`kind: ${kind}\n`));
      expect(b[i]).toBe(a[i]);
    }
    expect(report).toContain('document 6 (DaemonSet/node-agent): (document): skipped: agent-sidecar.io/inject is "false"');
  });

  it('keeps every comment, the key order and the flush sequence style of the input', () => {
    const comments = helm.split('\n').flatMap((l) => /#\s.*$/.exec(l)?.[0] ?? []);
    expect(comments.length).toBeGreaterThan(10);
    for (const c of comments) expect(out).toContain(c);
    const keys = (o: Obj) => Object.keys(o);
    const router = find(helm, 'Deployment', 'router');
    expect(keys(find(out, 'Deployment', 'router').spec.template.spec)).toEqual(keys(router.spec.template.spec));
    expect(out).toContain('      containers:\n      # A log shipper first');
  });

  it('a document indented by four spaces is printed with four', () => {
    const wide = [
      'apiVersion: v1',
      'kind: Pod',
      'metadata:',
      '    name: wide',
      'spec:',
      '    containers:',
      '        - name: agent',
      '          image: agent:1',
      '          ports:',
      '              - containerPort: 3000',
      '',
    ].join('\n');
    const res = inject(wide).text;
    expect(res).toMatch(/^ {8}- name: agent-sidecar\n {10}image: /m);
    expect(uninject(res).text).toBe(wide);
  });

  it('reports each change on its own line naming the document and the field', () => {
    for (const line of report)
      expect(line).toMatch(/^document \d+ \((Deployment|StatefulSet|DaemonSet|CronJob|Job|Service)\/[a-z-]+\): ([\w.[\]"/-]+|\(document\)): .+$/);
    expect(report.filter((l) => l.includes(`added container ${SIDECAR_CONTAINER}`))).toHaveLength(4);
  });

  it('is idempotent: injecting the output again changes nothing', () => {
    expect(inject(out).text).toBe(out);
    const native = inject(list, { nativeSidecar: true }).text;
    expect(inject(native, { nativeSidecar: true }).text).toBe(native);
  });

  it('a second injection with other options replaces the first instead of adding to it', () => {
    const again = inject(out, { image: 'example.com/sidecar:2' }).text;
    const spec = podSpec(find(again, 'Deployment', 'router'));
    expect((spec.containers as Obj[]).filter((c) => c.name === SIDECAR_CONTAINER).map((c) => c.image)).toEqual(['example.com/sidecar:2']);
    expect(again).toBe(inject(helm, { image: 'example.com/sidecar:2' }).text);
  });

  it('uninject gives back the input byte for byte', () => {
    expect(uninject(out).text).toBe(helm);
    expect(uninject(inject(list, { nativeSidecar: true }).text).text).toBe(list);
    expect(uninject(helm).text).toBe(helm);
  });

  it('an opt-out added later takes an earlier injection out', () => {
    const optedOut = out.replace(
      'kubectl.kubernetes.io/default-container: router',
      'kubectl.kubernetes.io/default-container: router\n        agent-sidecar.io/inject: "false"',
    );
    const spec = podSpec(find(inject(optedOut).text, 'Deployment', 'router'));
    expect(container(spec, SIDECAR_CONTAINER)).toBeUndefined();
    expect(find(inject(optedOut).text, 'Service', 'router').spec.ports[0].targetPort).toBe(8000);
  });
});

describe('inject: native sidecars, Lists, Services without targetPort', () => {
  const native = inject(list, { nativeSidecar: true }).text;

  it('--native-sidecar: an init container with restartPolicy Always, ahead of the existing ones', () => {
    const spec = podSpec(find(native, 'Pod', 'scratch-agent'));
    expect(spec.initContainers[0].name).toBe(SIDECAR_CONTAINER);
    expect(spec.initContainers[0].restartPolicy).toBe('Always');
    expect(container(spec, SIDECAR_CONTAINER)).toBeUndefined();
    const router = podSpec(find(inject(helm, { nativeSidecar: true }).text, 'Deployment', 'router'));
    expect(router.initContainers.map((c: Obj) => c.name)).toEqual([SIDECAR_CONTAINER, 'migrate']);
  });

  it("injects a List's items; a Service port without targetPort gets one, and loses it again on uninject", () => {
    const svc = find(native, 'Service', 'scratch-agent');
    expect(svc.spec.ports[0]).toEqual({ port: 3000, targetPort: PORT_NAME.ingress });
    expect(objects(uninject(native).text)).toEqual(objects(list));
  });

  it('a Service in another namespace, or selecting other pods, is left alone', () => {
    const other = helm.replace(
      /name: router\n {2}namespace: agents\nspec:\n {2}type: ClusterIP/,
      'name: router\n  namespace: elsewhere\nspec:\n  type: ClusterIP',
    );
    expect(find(inject(other).text, 'Service', 'router').spec.ports[0].targetPort).toBe(8000);
    expect(inject(other).changes.map(formatChange)).toContain(
      "document 3 (Deployment/router): (document): note: no Service in this input sends traffic to its port 8000; point its Service's targetPort at the port named sidecar-ingress",
    );
  });
});

describe('inject: settings', () => {
  it('--configmap-from: one ConfigMap per namespace with the file as given (validated), taken out again by uninject', () => {
    const file = join(dir, 'sidecar.yaml');
    const text =
      '# ours\nlisten:\n  address: 0.0.0.0:15001\nupstream:\n  healthPath: /health\nauth:\n  jwt:\n    secret: ${env:JWT_SECRET:-change-me-change-me-change-me-change-me}\n';
    writeFileSync(file, text);
    const res = inject(helm, { configmapFrom: file });
    const maps = objects(res.text).filter((o) => o.kind === 'ConfigMap');
    expect(maps).toHaveLength(1);
    expect(maps[0]!.metadata.namespace).toBe('agents');
    expect(maps[0]!.data['sidecar.yaml']).toBe(text);
    // The ports follow the file.
    const sidecar = container(podSpec(find(res.text, 'Deployment', 'router')), SIDECAR_CONTAINER)!;
    expect(sidecar.ports[0].containerPort).toBe(15001);
    expect(inject(res.text, { configmapFrom: file }).text).toBe(res.text);
    expect(uninject(res.text).text).toBe(helm);
  });

  it('port flags and --otel-endpoint', () => {
    const res = inject(list, { ingressPort: '15001', adminPort: '15020', egressPort: '15002', otelEndpoint: 'http://collector.observability:4317' }).text;
    const spec = podSpec(find(res, 'Pod', 'scratch-agent'));
    const sidecar = container(spec, SIDECAR_CONTAINER)!;
    expect(sidecar.ports.map((p: Obj) => p.containerPort)).toEqual([15001, 15002, 15020]);
    expect(envOf(sidecar).OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://collector.observability:4317');
    const agent = envOf(container(spec, 'agent')!);
    expect(agent.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://collector.observability:4317');
    expect(agent.ANTHROPIC_BASE_URL).toBe('http://127.0.0.1:15002/anthropic');
  });

  it('--upstream-port chooses the port where no annotation does', () => {
    // The router and the researcher with their Services (the others have no port named metrics).
    const res = inject(chunks(helm).slice(0, 6).join('---\n'), { upstreamPort: 'metrics' }).text;
    expect(envOf(container(podSpec(find(res, 'Deployment', 'router')), SIDECAR_CONTAINER)!).SIDECAR_UPSTREAM).toBe('http://127.0.0.1:9090');
    // The annotation still wins where there is one.
    expect(envOf(container(podSpec(find(res, 'StatefulSet', 'researcher')), SIDECAR_CONTAINER)!).SIDECAR_UPSTREAM).toBe('http://127.0.0.1:7000');
    expect(find(res, 'Service', 'router').spec.ports.map((p: Obj) => p.targetPort)).toEqual([8000, PORT_NAME.ingress]);
  });

  it('records what it injected in the status annotation', () => {
    const meta = find(out, 'Deployment', 'router').spec.template.metadata;
    const status = JSON.parse(meta.annotations[ANNOTATION.status]) as Obj;
    expect(status).toMatchObject({ version, container: SIDECAR_CONTAINER, agent: 'router', env: ['ANTHROPIC_BASE_URL', 'OTEL_SERVICE_NAME'] });
  });
});

describe('inject: the OTLP relay (agent-sidecar.io/relay)', () => {
  const manifest = (relay: string, extraPort = '') => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: helper
spec:
  template:
    metadata:
      annotations:
        agent-sidecar.io/relay: "${relay}"
    spec:
      containers:
        - name: agent
          image: helper:1
          ports:
            - containerPort: 8000${extraPort}
`;

  it('"true": the relay on in the sidecar, the agent’s own SDK pointed at it on loopback, and uninject takes it all back', () => {
    const result = inject(manifest('true'));
    const spec = podSpec(find(result.text, 'Deployment', 'helper'));
    expect(envOf(container(spec, SIDECAR_CONTAINER)!).SIDECAR_RELAY).toBe('true');
    // Kubernetes reads manifests as YAML 1.1, where a plain on is a boolean: an env value must stay a string there.
    const relayVar = (parseAllDocuments(result.text, { version: '1.1' })[0]!.toJS() as Obj).spec.template.spec.containers[1].env.find(
      (e: Obj) => e.name === 'SIDECAR_RELAY',
    );
    expect(typeof relayVar.value).toBe('string');
    const agentEnv = envOf(container(spec, 'agent')!);
    expect(agentEnv).toMatchObject({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_PROPAGATORS: 'tracecontext,baggage',
    });
    expect(uninject(result.text).text).toBe(manifest('true'));
  });

  it('off by default and with "false"; any other value, or a port of the pod on 4317 or 4318, is refused with its place', () => {
    for (const text of [manifest('false'), manifest('false').replace(/\n {6}annotations:\n.*relay.*\n/, '\n')]) {
      const spec = podSpec(find(inject(text).text, 'Deployment', 'helper'));
      expect(envOf(container(spec, SIDECAR_CONTAINER)!).SIDECAR_RELAY).toBeUndefined();
      expect(envOf(container(spec, 'agent')!).OTEL_EXPORTER_OTLP_PROTOCOL).toBeUndefined();
    }
    expect(() => inject(manifest('yes'))).toThrow(/agent-sidecar\.io\/relay: expected "true" or "false"/);
    expect(() => inject(manifest('true', '\n            - containerPort: 4318'))).toThrow(/port 4318 is also the OTLP\/HTTP port of the sidecar's relay/);
  });
});
