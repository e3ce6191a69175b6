import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ANNOTATION, injectManifests, SIDECAR_CONTAINER } from '../src/inject/index.ts';
import { container, envOf, find, podSpec, settingsFor, type Obj } from './inject-helpers.ts';

const inject = (text: string, flags = {}) => injectManifests(text, settingsFor(flags), { source: 'in.yaml' });
const uninject = (text: string) => injectManifests(text, settingsFor(), { source: 'in.yaml', uninject: true });

/** A Deployment whose pod template carries `annotations` (lines under annotations:) and whose agent has `env` (lines under env:). */
const manifest = (annotations: string[], env: string[] = [], extra = '') => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: helper
spec:
  template:
    metadata:
      annotations:
${annotations.map((a) => `        ${a}\n`).join('')}    spec:
      containers:
        - name: agent
          image: helper:1
          ports:
            - containerPort: 8000
${env.length === 0 ? '' : `          env:\n${env.map((e) => `            ${e}\n`).join('')}`}${extra}`;

const spec = (text: string): Obj => podSpec(find(text, 'Deployment', 'helper'));

describe('inject: zero-code instrumentation (agent-sidecar.io/inject-nodejs, inject-python)', () => {
  it('"true" for Node.js: the Operator’s image copies the instrumentation into a shared volume, NODE_OPTIONS loads it, the relay takes its telemetry; uninject takes all of it back', () => {
    const text = manifest(['agent-sidecar.io/inject-nodejs: "true"']);
    const out = inject(text);
    const s = spec(out.text);
    const init = container(s, 'agent-sidecar-instrumentation-nodejs', 'initContainers')!;
    expect(init.image).toMatch(/^ghcr\.io\/open-telemetry\/opentelemetry-operator\/autoinstrumentation-nodejs:\d+\.\d+\.\d+-\d+$/);
    expect(init.command).toEqual(['cp', '-r', '/autoinstrumentation/.', '/otel-auto-instrumentation-nodejs']);
    expect(init.volumeMounts).toEqual([{ name: 'agent-sidecar-instrumentation-nodejs', mountPath: '/otel-auto-instrumentation-nodejs' }]);
    expect(init.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(s.volumes).toContainEqual({ name: 'agent-sidecar-instrumentation-nodejs', emptyDir: { sizeLimit: '200Mi' } });
    const agent = container(s, 'agent')!;
    expect(agent.volumeMounts).toEqual([{ name: 'agent-sidecar-instrumentation-nodejs', mountPath: '/otel-auto-instrumentation-nodejs', readOnly: true }]);
    expect(envOf(agent)).toMatchObject({
      NODE_OPTIONS: '--require /otel-auto-instrumentation-nodejs/autoinstrumentation.js',
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    });
    // The relay is on without its own annotation: the agent's SDK exports to it.
    expect(envOf(container(s, SIDECAR_CONTAINER)!).SIDECAR_RELAY).toBe('true');
    expect(out.changes.map((c) => c.what).join('\n')).toMatch(/added agent-sidecar-instrumentation-nodejs \(ghcr\.io\/.*\): copies the nodejs instrumentation/);
    expect(uninject(out.text).text).toBe(text);
  });

  it('every value it writes reads as a string to a YAML 1.1 reader, as Kubernetes reads manifests (a plain on or yes would be a boolean)', () => {
    const text = manifest(['agent-sidecar.io/inject-nodejs: "true"', 'agent-sidecar.io/inject-python: "true"']);
    const docs = parseAllDocuments(inject(text).text, { version: '1.1' }).map((d) => d.toJS() as Obj);
    const s = podSpec(docs[0]!);
    const values = [...(s.containers as Obj[]), ...(s.initContainers as Obj[])].flatMap((c) => ((c.env ?? []) as Obj[]).filter((e) => 'value' in e));
    expect(values.length).toBeGreaterThan(10);
    for (const e of values) expect(typeof e.value, `${e.name}: ${String(e.value)}`).toBe('string');
    expect(values.find((e) => e.name === 'SIDECAR_RELAY')?.value).toBe('true');
  });

  it('Python with its own PYTHONPATH, and Node.js with its own NODE_OPTIONS, in one agent: combined as the Operator does, and given back exactly', () => {
    const text = manifest(
      ['agent-sidecar.io/inject-python: "true"', 'agent-sidecar.io/inject-nodejs: registry.example/nodejs-instr:2'],
      [
        '- name: PYTHONPATH',
        '  value: "/app/lib"',
        '- name: NODE_OPTIONS',
        "  value: '--max-old-space-size=512'",
        '- name: OTEL_LOGS_EXPORTER',
        '  value: none',
      ],
    );
    const out = inject(text);
    const s = spec(out.text);
    expect(container(s, 'agent-sidecar-instrumentation-nodejs', 'initContainers')!.image).toBe('registry.example/nodejs-instr:2');
    expect(container(s, 'agent-sidecar-instrumentation-python', 'initContainers')!.image).toMatch(/autoinstrumentation-python:\d+\.\d+b\d+-\d+$/);
    const env = envOf(container(s, 'agent')!);
    expect(env.PYTHONPATH).toBe(
      '/otel-auto-instrumentation-python/opentelemetry/instrumentation/auto_instrumentation:/app/lib:/otel-auto-instrumentation-python',
    );
    expect(env.NODE_OPTIONS).toBe('--max-old-space-size=512 --require /otel-auto-instrumentation-nodejs/autoinstrumentation.js');
    // The manifest's own choice stays.
    expect(env.OTEL_LOGS_EXPORTER).toBe('none');
    expect(env.OTEL_TRACES_EXPORTER).toBe('otlp');
    const status = JSON.parse(find(out.text, 'Deployment', 'helper').spec.template.metadata.annotations[ANNOTATION.status]) as Obj;
    expect(status.instrumentation).toEqual({
      languages: ['nodejs', 'python'],
      env: ['OTEL_METRICS_EXPORTER', 'OTEL_TRACES_EXPORTER'],
      changed: { NODE_OPTIONS: '--max-old-space-size=512', PYTHONPATH: '/app/lib' },
    });
    expect(uninject(out.text).text).toBe(text);
    // A second inject first takes the first back: the same output, not a doubled value.
    expect(inject(out.text).text).toBe(out.text);
  });

  it('beside a native sidecar: the sidecar starts first, the instrumentation copies after it', () => {
    const text = manifest(['agent-sidecar.io/inject-python: "true"']);
    const out = inject(text, { nativeSidecar: true });
    expect((spec(out.text).initContainers as Obj[]).map((c) => c.name)).toEqual([SIDECAR_CONTAINER, 'agent-sidecar-instrumentation-python']);
    expect(uninject(out.text).text).toBe(text);
  });

  it('refuses what it cannot do, with the place: a bad value, the relay turned off, a loader variable from elsewhere, the path mounted already', () => {
    expect(() => inject(manifest(['agent-sidecar.io/inject-nodejs: "yes"']))).toThrow(/inject-nodejs: expected "true", "false" or an image/);
    expect(() => inject(manifest(['agent-sidecar.io/inject-nodejs: "true"', 'agent-sidecar.io/relay: "false"']))).toThrow(
      /agent-sidecar\.io\/relay.*"false", but .* instruments the agent/,
    );
    expect(() =>
      inject(manifest(['agent-sidecar.io/inject-nodejs: "true"'], ['- name: NODE_OPTIONS', '  valueFrom:', '    configMapKeyRef: { name: opts, key: node }'])),
    ).toThrow(/in\.yaml.*NODE_OPTIONS has no literal value \(valueFrom\)/s);
    const mounted = '          volumeMounts:\n            - name: mine\n              mountPath: /otel-auto-instrumentation-python\n';
    expect(() => inject(manifest(['agent-sidecar.io/inject-python: "true"'], [], mounted))).toThrow(/\/otel-auto-instrumentation-python is mounted already/);
    // "false" is the default, as no annotation.
    const off = spec(inject(manifest(['agent-sidecar.io/inject-nodejs: "false"'])).text);
    expect(off.initContainers).toBeUndefined();
    expect(envOf(container(off, 'agent')!).NODE_OPTIONS).toBeUndefined();
  });
});
