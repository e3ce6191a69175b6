import { isMap, type YAMLMap, type YAMLSeq } from 'yaml';
import { ANNOTATION } from './names.ts';
import { lineIn, type Segment, type Stream } from './stream.ts';
import { annotationOf, mapAt, readMapAt, seqAt, stringMap, text } from './tree.ts';
import { inputError, type Path, type Where } from './where.ts';

/** One Kubernetes object of the input: a document, or an item of a `kind: List`. */
export interface K8sObject {
  segment: Segment;
  node: YAMLMap;
  where: Where;
  kind: string | undefined;
  apiVersion: string | undefined;
  /** The List holding it, when it is an item of one. */
  list: YAMLSeq | undefined;
}

/** Every object in the stream; documents that are not mappings (or empty) are no objects. */
export function objectsOf(stream: Stream): K8sObject[] {
  const out: K8sObject[] = [];
  for (const [i, segment] of stream.segments.entries()) {
    const top = segment.doc.contents;
    if (!isMap(top)) continue;
    const make = (node: YAMLMap, prefix: Path, list: YAMLSeq | undefined): K8sObject => {
      const kind = text(node, 'kind');
      const meta = node.get('metadata', true);
      const name = isMap(meta) ? (text(meta as YAMLMap, 'name') ?? text(meta as YAMLMap, 'generateName')) : undefined;
      const line = (path: Path) => lineIn(segment.doc, stream.lineOf, path);
      return { segment, node, kind, apiVersion: text(node, 'apiVersion'), list, where: { source: stream.source, doc: i + 1, kind, name, prefix, line } };
    };
    const obj = make(top as YAMLMap, [], undefined);
    if (obj.kind === 'List' && obj.apiVersion === 'v1') {
      const items = seqAt(obj.where, obj.node, 'items', []);
      for (const [j, item] of (items?.items ?? []).entries()) if (isMap(item)) out.push(make(item as YAMLMap, ['items', j], items));
    } else {
      out.push(obj);
    }
  }
  return out;
}

/** Where each workload kind keeps its pod template, and the API groups it belongs to. */
const WORKLOADS: Record<string, { api: RegExp; template: Path }> = {
  Pod: { api: /^v1$/, template: [] },
  Deployment: { api: /^apps\//, template: ['spec', 'template'] },
  StatefulSet: { api: /^apps\//, template: ['spec', 'template'] },
  DaemonSet: { api: /^apps\//, template: ['spec', 'template'] },
  Job: { api: /^batch\//, template: ['spec', 'template'] },
  CronJob: { api: /^batch\//, template: ['spec', 'jobTemplate', 'spec', 'template'] },
};

export const WORKLOAD_KINDS = Object.keys(WORKLOADS);

export const isWorkload = (o: K8sObject): boolean => {
  const spec = o.kind === undefined ? undefined : WORKLOADS[o.kind];
  return spec !== undefined && spec.api.test(o.apiVersion ?? '');
};

export const isService = (o: K8sObject): boolean => o.kind === 'Service' && o.apiVersion === 'v1';

/** An annotation's value and where it was found (for messages). */
export type Annotations = Map<string, { value: string; path: Path }>;

/** A workload's pod template: labels, namespace and annotations as injection sees them. */
export interface PodTemplate {
  obj: K8sObject;
  template: YAMLMap;
  /** The template's path inside the object ([] for a Pod). */
  path: Path;
  annotations: Annotations;
  labels: Map<string, string>;
  namespace: string | undefined;
  /** The workload's name: the agent's service name for telemetry. */
  name: string;
}

/** The pod template of a workload; an error when the path to it is missing or not a mapping. */
export function podTemplateOf(obj: K8sObject): PodTemplate {
  const path = WORKLOADS[obj.kind!]!.template;
  let template = obj.node;
  for (const [i, key] of path.entries()) {
    const next = mapAt(obj.where, template, String(key), path.slice(0, i));
    if (next === undefined) throw inputError('SIDECAR_INJECT_INVALID', obj.where, path.slice(0, i + 1), 'missing: a workload needs its pod template here');
    template = next;
  }
  const meta = mapAt(obj.where, obj.node, 'metadata', []);
  const templateMeta = path.length === 0 ? meta : mapAt(obj.where, template, 'metadata', path);
  const annotations: Annotations = new Map();
  // The workload's own annotations count too (kubectl annotate deployment …); the pod template's win.
  for (const [m, at] of [
    [meta, ['metadata']],
    [templateMeta, [...path, 'metadata']],
  ] as const) {
    if (m === undefined) continue;
    for (const [key, value] of stringMap(mapAt(obj.where, m, 'annotations', at))) {
      annotations.set(key, { value, path: [...at, 'annotations', key] });
    }
  }
  const name = obj.where.name;
  if (name === undefined) throw inputError('SIDECAR_INJECT_INVALID', obj.where, ['metadata', 'name'], 'missing: the workload name becomes the service name');
  return {
    obj,
    template,
    path,
    annotations,
    labels: stringMap(templateMeta === undefined ? undefined : readMapAt(obj.segment.doc, obj.where, templateMeta, 'labels', [...path, 'metadata'])),
    namespace: meta === undefined ? undefined : text(meta, 'namespace'),
    name: name.replace(/-$/, ''),
  };
}

/** What the inject annotation says: "false" opts out, "true" asks for it, absent is the default. */
export function injectChoice(obj: K8sObject, annotations?: Annotations): boolean | undefined {
  const own = annotationOf(obj.node, ANNOTATION.inject);
  const found = annotations?.get(ANNOTATION.inject) ?? (own === undefined ? undefined : { value: own, path: ['metadata', 'annotations', ANNOTATION.inject] });
  if (found === undefined) return undefined;
  if (found.value === 'true' || found.value === 'false') return found.value === 'true';
  throw inputError('SIDECAR_INJECT_INVALID', obj.where, found.path, `"${found.value}": expected "true" or "false"`);
}
