import { isMap, isScalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { z } from 'zod';
import type { Agent } from './agent.ts';
import { ANNOTATION, LOCKED_DOWN } from './names.ts';
import type { PodTemplate } from './objects.ts';
import { ensure, indexByName, removeByName, seqAt, type Doc } from './tree.ts';
import { change, inputError, type Change, type Path, type Where } from './where.ts';

// Zero-code instrumentation in a pod, with the OpenTelemetry Operator's images and contract:
// an init container copies the image's /autoinstrumentation into an emptyDir shared with the
// agent, and the agent's runtime is told to load it (NODE_OPTIONS, PYTHONPATH). The agent's
// SDK then exports to the sidecar's relay, which protects what it sends on.

export type Language = 'nodejs' | 'python';

interface LanguageSpec {
  annotation: string;
  /** The Operator's published image: the tag is `<SDK version>-<revision>`. */
  image: string;
  /** Where the copy is mounted in the init container and in the agent. */
  dir: string;
  /** The variable that makes the runtime load it, and how a value already there is combined. */
  loader: { name: string; combine: (existing: string | undefined) => string };
  /** Set when the manifest does not: what the Operator's images need to export everything. */
  env: ReadonlyArray<[string, string]>;
}

const NODE_DIR = '/otel-auto-instrumentation-nodejs';
const PYTHON_DIR = '/otel-auto-instrumentation-python';

export const LANGUAGES: Readonly<Record<Language, LanguageSpec>> = {
  nodejs: {
    annotation: ANNOTATION.injectNodejs,
    image: 'ghcr.io/open-telemetry/opentelemetry-operator/autoinstrumentation-nodejs:0.78.0-5',
    dir: NODE_DIR,
    loader: { name: 'NODE_OPTIONS', combine: (v) => `${v === undefined || v === '' ? '' : `${v} `}--require ${NODE_DIR}/autoinstrumentation.js` },
    // The Node.js SDK starts no metrics reader unless one is named.
    env: [['OTEL_METRICS_EXPORTER', 'otlp']],
  },
  python: {
    annotation: ANNOTATION.injectPython,
    image: 'ghcr.io/open-telemetry/opentelemetry-operator/autoinstrumentation-python:0.66b0-3',
    dir: PYTHON_DIR,
    // sitecustomize.py in the first directory starts the SDK; the second holds the packages,
    // after the agent's own so that its pinned versions win.
    loader: {
      name: 'PYTHONPATH',
      combine: (v) => [`${PYTHON_DIR}/opentelemetry/instrumentation/auto_instrumentation`, ...(v === undefined || v === '' ? [] : [v]), PYTHON_DIR].join(':'),
    },
    env: [
      ['OTEL_TRACES_EXPORTER', 'otlp'],
      ['OTEL_METRICS_EXPORTER', 'otlp'],
      ['OTEL_LOGS_EXPORTER', 'otlp'],
    ],
  },
};

/** The init container and the volume of one language (the same name). */
export const instrumentationName = (language: Language): string => `agent-sidecar-instrumentation-${language}`;

/** What the status annotation records, for uninject. */
export const instrumentationStatusSchema = z.object({
  languages: z.array(z.enum(['nodejs', 'python'])),
  /** Variables added to the agent. */
  env: z.array(z.string()),
  /** Variables the agent had, with the value they had before inject combined ours into it. */
  changed: z.record(z.string(), z.string()),
});
export type InstrumentationStatus = z.infer<typeof instrumentationStatusSchema>;

export interface Instrumentation {
  language: Language;
  image: string;
}

/**
 * The languages a workload asks to instrument: agent-sidecar.io/inject-nodejs and
 * inject-python, each "true" (the Operator's image), "false" (the default) or an image of
 * the same layout.
 */
export function wantedInstrumentation(t: PodTemplate): Instrumentation[] {
  const out: Instrumentation[] = [];
  for (const [language, spec] of Object.entries(LANGUAGES) as Array<[Language, LanguageSpec]>) {
    const a = t.annotations.get(spec.annotation);
    if (a === undefined || a.value === 'false') continue;
    if (a.value === 'true') out.push({ language, image: spec.image });
    else if (/^[a-z0-9][\w.\-/:@]*$/i.test(a.value) && /[/:]/.test(a.value)) out.push({ language, image: a.value });
    else
      throw inputError(
        'SIDECAR_INJECT_INVALID',
        t.obj.where,
        a.path,
        `${spec.annotation}: expected "true", "false" or an image (such as ${spec.image}), not "${a.value}"`,
      );
  }
  return out;
}

/** Refuses what would clash: an init container, volume or mount of the same name or path. */
export function checkInstrumentation(
  t: PodTemplate,
  agent: Agent,
  initContainers: YAMLSeq | undefined,
  volumes: YAMLSeq | undefined,
  wanted: Instrumentation[],
): void {
  const w = t.obj.where;
  const specPath = [...t.path, 'spec'];
  const mounts = seqAt(w, agent.node, 'volumeMounts', agent.path);
  const env = seqAt(w, agent.node, 'env', agent.path);
  for (const { language } of wanted) {
    const name = instrumentationName(language);
    const spec = LANGUAGES[language];
    for (const [key, seq] of [
      ['initContainers', initContainers],
      ['volumes', volumes],
    ] as const) {
      const i = indexByName(seq, name);
      if (i >= 0) throw inputError('SIDECAR_INJECT_INVALID', w, [...specPath, key, i, 'name'], `${name} is there already; rename it`);
    }
    const m = (mounts?.items ?? []).findIndex((item) => isMap(item) && String((item as YAMLMap).get('mountPath')) === spec.dir);
    if (m >= 0)
      throw inputError(
        'SIDECAR_INJECT_INVALID',
        w,
        [...agent.path, 'volumeMounts', m],
        `${spec.dir} is mounted already; ${spec.annotation} mounts the instrumentation there`,
      );
    const e = indexByName(env, spec.loader.name);
    if (e >= 0 && !isScalar((env!.items[e] as YAMLMap).get('value', true))) {
      throw inputError(
        'SIDECAR_INJECT_INVALID',
        w,
        [...agent.path, 'env', e],
        `${spec.loader.name} has no literal value (valueFrom): ${spec.annotation} needs to add to it; write its value, or leave the annotation off`,
      );
    }
  }
}

/**
 * Adds each language's init container, volume and mount, and its variables on the agent
 * (`env` already ensured). Returns the status to record.
 */
export function addInstrumentation(
  doc: Doc,
  t: PodTemplate,
  spec: YAMLMap,
  agent: Agent,
  env: YAMLSeq,
  wanted: Instrumentation[],
  created: string[],
  nulls: Record<string, string>,
  changes: Change[],
): InstrumentationStatus {
  const w = t.obj.where;
  const specPath: Path = [...t.path, 'spec'];
  const status: InstrumentationStatus = { languages: [], env: [], changed: {} };
  for (const { language, image } of wanted) {
    const name = instrumentationName(language);
    const lang = LANGUAGES[language];
    const init = ensure(doc, spec, 'initContainers', seqAt(w, spec, 'initContainers', specPath), 'seq', created, 'initContainers', nulls);
    init.items.push(
      doc.createNode({
        name,
        image,
        command: ['cp', '-r', '/autoinstrumentation/.', lang.dir],
        resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '128Mi' } },
        securityContext: LOCKED_DOWN,
        volumeMounts: [{ name, mountPath: lang.dir }],
      }),
    );
    const volumes = ensure(doc, spec, 'volumes', seqAt(w, spec, 'volumes', specPath), 'seq', created, 'volumes', nulls);
    volumes.items.push(doc.createNode({ name, emptyDir: { sizeLimit: '200Mi' } }));
    const mounts = ensure(doc, agent.node, 'volumeMounts', seqAt(w, agent.node, 'volumeMounts', agent.path), 'seq', created, 'agentVolumeMounts', nulls);
    mounts.items.push(doc.createNode({ name, mountPath: lang.dir, readOnly: true }));
    changes.push(
      change(w, [...specPath, 'initContainers'], `added ${name} (${image}): copies the ${language} instrumentation to ${lang.dir}, mounted in ${agent.name}`),
    );

    const i = indexByName(env, lang.loader.name);
    if (i >= 0) {
      const value = (env.items[i] as YAMLMap).get('value', true);
      const before = String(isScalar(value) ? (value.value ?? '') : '');
      status.changed[lang.loader.name] = before;
      (value as { value: unknown }).value = lang.loader.combine(before);
      changes.push(change(w, [...agent.path, 'env', i], `${lang.loader.name}: added the ${language} instrumentation to its value`));
    } else {
      const value = lang.loader.combine(undefined);
      env.items.push(doc.createNode({ name: lang.loader.name, value }));
      status.env.push(lang.loader.name);
      changes.push(change(w, [...agent.path, 'env'], `added ${lang.loader.name}=${value}`));
    }
    for (const [key, value] of lang.env) {
      if (indexByName(env, key) >= 0) continue;
      env.items.push(doc.createNode({ name: key, value }));
      status.env.push(key);
      changes.push(change(w, [...agent.path, 'env'], `added ${key}=${value}`));
    }
    status.languages.push(language);
  }
  return status;
}

/** Takes out what addInstrumentation added; the agent's own variables get their values back. */
export function removeInstrumentation(
  spec: YAMLMap | undefined,
  agent: YAMLMap | undefined,
  agentPath: Path,
  specPath: Path,
  status: InstrumentationStatus,
  changes: Change[],
  w: Where,
): void {
  const init = spec?.get('initContainers', true) as YAMLSeq | undefined;
  const volumes = spec?.get('volumes', true) as YAMLSeq | undefined;
  const mounts = agent?.get('volumeMounts', true) as YAMLSeq | undefined;
  const env = agent?.get('env', true) as YAMLSeq | undefined;
  for (const language of status.languages) {
    const name = instrumentationName(language);
    if (removeByName(init, name)) changes.push(change(w, [...specPath, 'initContainers'], `removed ${name}`));
    removeByName(volumes, name);
    removeByName(mounts, name);
  }
  for (const name of status.env) if (removeByName(env, name)) changes.push(change(w, [...agentPath, 'env'], `removed ${name}`));
  for (const [name, before] of Object.entries(status.changed)) {
    const i = indexByName(env, name);
    const value = i < 0 ? undefined : (env!.items[i] as YAMLMap).get('value', true);
    if (isScalar(value)) {
      value.value = before;
      changes.push(change(w, [...agentPath, 'env', i], `${name}: its value before inject`));
    }
  }
}
