import { isMap, Scalar, type YAMLMap } from 'yaml';
import { PORT_NAME } from './names.ts';
import type { K8sObject } from './objects.ts';
import type { Injected } from './pod.ts';
import { markRaw, scalarSource } from './source.ts';
import { readStatus, removeStatus, serviceStatusSchema, writeStatus, type ServiceStatus } from './status.ts';
import { mapAt, readMapAt, scalarValue, seqAt, stringMap, text } from './tree.ts';
import { change, describe, type Change } from './where.ts';

/**
 * Points the Services that select an injected workload at the sidecar: each port whose
 * targetPort (a number or a port name; the port itself when absent) is the agent's port
 * gets the sidecar's named ingress port. Returns the workloads no Service routes to.
 */
export function routeServices(services: K8sObject[], injected: Injected[], version: string, changes: Change[]): Injected[] {
  const routed = new Set<Injected>();
  for (const svc of services) {
    const w = svc.where;
    const spec = mapAt(w, svc.node, 'spec', []);
    const selector = stringMap(spec === undefined ? undefined : readMapAt(svc.segment.doc, w, spec, 'selector', ['spec']));
    const ports = spec === undefined ? undefined : seqAt(w, spec, 'ports', ['spec']);
    if (selector.size === 0 || ports === undefined) continue;
    const namespace = text(mapAt(w, svc.node, 'metadata', []), 'namespace');
    const status: ServiceStatus = { version, ports: [], created: [] };
    for (const inj of injected) {
      if (!sameNamespace(namespace, inj.t.namespace) || ![...selector].every(([k, v]) => inj.t.labels.get(k) === v)) continue;
      for (const [i, item] of ports.items.entries()) {
        if (!isMap(item)) continue;
        const node = item.get('targetPort', true);
        const target = scalarValue(node) ?? scalarValue(item.get('port', true));
        if (target !== inj.agent.port && (inj.agent.portName === undefined || target !== inj.agent.portName)) continue;
        // Its source text (quotes and all) is recorded, so that uninject writes it back exactly.
        // (Only when it is not the value as is: a plain `http` or `8080` prints back by itself.)
        const source = node instanceof Scalar ? scalarSource(svc.segment.doc, node) : undefined;
        const raw = source === String(target) ? undefined : source;
        if (node instanceof Scalar) node.value = PORT_NAME.ingress;
        else (item as YAMLMap).set('targetPort', PORT_NAME.ingress);
        status.ports.push({ index: i, targetPort: node instanceof Scalar ? (target as string | number) : null, ...(raw === undefined ? {} : { raw }) });
        changes.push(
          change(
            w,
            ['spec', 'ports', i, 'targetPort'],
            `${String(target)} -> ${PORT_NAME.ingress} (traffic for ${describe(inj.t.obj.where)} enters through its sidecar)`,
          ),
        );
        routed.add(inj);
      }
    }
    if (status.ports.length > 0) {
      writeStatus(svc.segment.doc, w, svc.node, [], status);
      svc.segment.changed = true;
    }
  }
  return injected.filter((inj) => !routed.has(inj));
}

/** An object without a namespace lands in the namespace kubectl applies it to: it matches any. */
const sameNamespace = (a: string | undefined, b: string | undefined) => a === undefined || b === undefined || a === b;

/** Puts back the targetPorts the status annotation recorded. Returns false when there is none. */
export function restoreService(svc: K8sObject, changes: Change[]): boolean {
  const w = svc.where;
  const status = readStatus(w, svc.node, [], serviceStatusSchema);
  if (status === undefined) return false;
  const spec = mapAt(w, svc.node, 'spec', []);
  const ports = spec === undefined ? undefined : seqAt(w, spec, 'ports', ['spec']);
  for (const { index, targetPort, raw } of status.ports) {
    const item = ports?.items[index];
    if (!isMap(item)) continue;
    const node = item.get('targetPort', true);
    if (targetPort === null) item.delete('targetPort');
    else if (node instanceof Scalar) {
      node.value = targetPort;
      if (raw !== undefined) markRaw(node, raw);
    } else item.set('targetPort', targetPort);
    changes.push(change(w, ['spec', 'ports', index, 'targetPort'], `${PORT_NAME.ingress} -> ${targetPort ?? '(none: the port itself)'}`));
  }
  removeStatus(svc.node, status.created, status.nulls);
  svc.segment.changed = true;
  changes.push(change(w, ['metadata', 'annotations'], 'removed the agent-sidecar status'));
  return true;
}
