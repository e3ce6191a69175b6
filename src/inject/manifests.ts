import { Document } from 'yaml';
import { PORT_NAME } from './names.ts';
import { generatedStatus, isGenerated, rawStatus } from './status.ts';
import { injectChoice, isService, isWorkload, objectsOf, podTemplateOf, WORKLOAD_KINDS, type K8sObject } from './objects.ts';
import { injectPod, uninjectPod, type Injected } from './pod.ts';
import { restoreService, routeServices } from './service.ts';
import type { InjectSettings } from './settings.ts';
import { configMapObject } from './sidecar.ts';
import { joinedBefore, parseStream, printStream } from './stream.ts';
import { change, describe, inputError, type Change } from './where.ts';

export interface Result {
  text: string;
  /** One entry per change, for the report on stderr. */
  changes: Change[];
}

/**
 * Injects the sidecar into every workload of a multi-document Kubernetes manifest (or, with
 * `uninject`, takes it out again). What was injected before is taken out first, so
 * injecting twice gives what injecting once gives.
 *
 * @example
 * const { text, changes } = injectManifests(readFileSync('app.yaml', 'utf8'), resolveSettings({}), { source: 'app.yaml' });
 */
export function injectManifests(input: string, settings: InjectSettings, options: { source?: string; uninject?: boolean } = {}): Result {
  const stream = parseStream(input, options.source ?? 'stdin');
  const objects = objectsOf(stream);
  const undone: Change[] = [];
  for (const obj of objects) {
    if (isGenerated(rawStatus(obj.node))) drop(obj, undone);
    else if (isWorkload(obj)) uninjectPod(podTemplateOf(obj), undone);
    else if (isService(obj)) restoreService(obj, undone);
  }
  if (options.uninject) return { text: printStream(stream), changes: undone };

  // Injecting again: one line per object that had been injected, then what goes in now.
  const changes: Change[] = [...new Set(undone.map((c) => c.where))].map((where) => ({
    where,
    field: '(document)',
    what: 'took out the earlier injection first',
  }));
  const injected: Injected[] = [];
  for (const obj of objects) {
    if (!isWorkload(obj)) {
      if (injectChoice(obj) === true) {
        throw inputError(
          'SIDECAR_INJECT_KIND_UNSUPPORTED',
          obj.where,
          ['kind'],
          `${obj.apiVersion ?? '?'} ${obj.kind ?? '(no kind)'} cannot be injected; kinds that can: ${WORKLOAD_KINDS.join(', ')}`,
        );
      }
      continue;
    }
    const t = podTemplateOf(obj);
    if (injectChoice(obj, t.annotations) === false) {
      changes.push(change(obj.where, [], 'skipped: agent-sidecar.io/inject is "false"'));
      continue;
    }
    injected.push(injectPod(obj.segment.doc, t, settings, changes));
  }
  const unrouted = routeServices(objects.filter(isService), injected, settings.version, changes);
  // Jobs seldom have a Service; a long-running workload without one is worth a word.
  for (const inj of unrouted.filter((i) => i.t.obj.kind !== 'Job' && i.t.obj.kind !== 'CronJob')) {
    changes.push(
      change(
        inj.t.obj.where,
        [],
        `note: no Service in this input sends traffic to its port ${inj.agent.port}; point its Service's targetPort at the port named ${PORT_NAME.ingress}`,
      ),
    );
  }
  if (settings.configFile === undefined) return { text: printStream(stream), changes };
  return { text: printStream(stream, configMaps(injected, settings, changes, joinedBefore(printStream(stream), stream))), changes };
}

/** With --configmap-from: one ConfigMap per namespace that an injected workload uses it in. */
function configMaps(injected: Injected[], settings: InjectSettings, changes: Change[], joined: string | undefined): Document[] {
  const file = settings.configFile;
  if (file === undefined) return [];
  const namespaces = new Set(injected.filter((i) => i.configMap === settings.configMap).map((i) => i.t.namespace));
  return [...namespaces].map((namespace, i) => {
    const doc = new Document(configMapObject(settings.configMap, namespace, file.text, settings.version, i === 0 ? joined : undefined));
    changes.push({
      where: 'new document',
      field: `ConfigMap/${settings.configMap}`,
      what: `added from ${file.path}${namespace === undefined ? '' : ` in namespace ${namespace}`}`,
    });
    return doc;
  });
}

/** Removes an object inject generated: its document, or its item in a List. */
function drop(obj: K8sObject, changes: Change[]): void {
  if (obj.list === undefined) {
    obj.segment.dropped = true;
    obj.segment.joined = generatedStatus(rawStatus(obj.node))?.joined;
  } else {
    obj.list.items.splice(obj.list.items.indexOf(obj.node), 1);
    obj.segment.changed = true;
  }
  changes.push({ where: describe(obj.where), field: '(document)', what: 'removed: agent-sidecar generated it' });
}
