import { isScalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { ANNOTATION, DEFAULT_CONTAINER_ANNOTATION, PORT_NAME, RELAY_PORTS } from './names.ts';
import type { PodTemplate } from './objects.ts';
import type { InjectSettings } from './settings.ts';
import { indexByName, mapItems, scalarValue, seqAt, text } from './tree.ts';
import { inputError, type Path } from './where.ts';

/** The agent container and the port the sidecar forwards to. */
export interface Agent {
  index: number;
  node: YAMLMap;
  name: string;
  /** Path of the container inside the object. */
  path: Path;
  port: number;
  /** The container port's name, when it has one (a Service may target it by name). */
  portName: string | undefined;
}

interface Port {
  number: number;
  name: string | undefined;
  path: Path;
}

/**
 * Finds the agent: the container named by the container annotation, else kubectl's default
 * container, else the first; and its port: the upstream-port annotation, else
 * --upstream-port, else its first declared port.
 */
export function findAgent(t: PodTemplate, containers: YAMLSeq, settings: InjectSettings): Agent {
  const w = t.obj.where;
  const listPath = [...t.path, 'spec', 'containers'];
  const items = mapItems(w, containers, listPath);
  const chosen = t.annotations.get(ANNOTATION.container) ?? t.annotations.get(DEFAULT_CONTAINER_ANNOTATION);
  let index = 0;
  if (chosen !== undefined) {
    index = indexByName(containers, chosen.value);
    if (index < 0) throw inputError('SIDECAR_INJECT_INVALID', w, chosen.path, `no container named "${chosen.value}"; containers: ${names(items)}`);
  }
  const node = items[index];
  if (node === undefined) throw inputError('SIDECAR_INJECT_INVALID', w, listPath, 'no agent container to put the sidecar in front of');
  const path = [...listPath, index];
  const name = text(node, 'name') ?? '';
  const ports = portsOf(t, node, path);
  const wanted = t.annotations.get(ANNOTATION.upstreamPort);
  const spec = wanted?.value ?? settings.upstreamPort;
  const from = wanted !== undefined ? wanted.path : [...path, 'ports'];
  let port: Port | undefined;
  if (spec === undefined) {
    port = ports[0];
    if (port === undefined) {
      throw inputError(
        'SIDECAR_INJECT_PORT_NOT_FOUND',
        w,
        from,
        `the agent container "${name}" declares no port; declare its containerPort, or name it with the ${ANNOTATION.upstreamPort} annotation or --upstream-port`,
      );
    }
  } else if (/^\d+$/.test(spec)) {
    const n = Number(spec);
    if (n < 1 || n > 65535) throw inputError('SIDECAR_INJECT_INVALID', w, from, `${spec}: expected a port from 1 to 65535`);
    // An undeclared port is still a port: Kubernetes treats containerPort as informational.
    port = ports.find((p) => p.number === n) ?? { number: n, name: undefined, path: from };
  } else {
    port = ports.find((p) => p.name === spec);
    if (port === undefined) {
      const known = ports.map((p) => (p.name === undefined ? String(p.number) : `${p.name} (${p.number})`)).join(', ') || 'none';
      throw inputError('SIDECAR_INJECT_PORT_NOT_FOUND', w, from, `the agent container "${name}" has no port named "${spec}"; its ports: ${known}`);
    }
  }
  return { index, node, name, path, port: port.number, portName: port.name };
}

function names(items: YAMLMap[]): string {
  return items.map((c) => text(c, 'name') ?? '?').join(', ');
}

function portsOf(t: PodTemplate, container: YAMLMap, path: Path): Port[] {
  const w = t.obj.where;
  return mapItems(w, seqAt(w, container, 'ports', path), [...path, 'ports']).map((p, j) => {
    const at = [...path, 'ports', j, 'containerPort'];
    const n = scalarValue(p.get('containerPort', true));
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535)
      throw inputError('SIDECAR_INJECT_INVALID', w, at, 'expected a port number from 1 to 65535');
    return { number: n, name: text(p, 'name'), path: at };
  });
}

/**
 * The sidecar shares the pod's network namespace: none of its ports may be one that a
 * container of the pod (or the agent's upstream port) already uses.
 */
export function checkPorts(
  t: PodTemplate,
  lists: ReadonlyArray<[key: string, seq: YAMLSeq | undefined]>,
  agent: Agent,
  settings: InjectSettings,
  relay = false,
): void {
  const w = t.obj.where;
  const taken: Port[] = [];
  for (const [key, seq] of lists) {
    for (const [i, c] of mapItems(w, seq, [...t.path, 'spec', key]).entries()) taken.push(...portsOf(t, c, [...t.path, 'spec', key, i]));
  }
  // An upstream port the container does not declare (named by the annotation or the flag).
  taken.push({ number: agent.port, name: agent.portName, path: [...agent.path, 'ports'] });
  for (const [role, number] of Object.entries(settings.ports) as Array<[keyof typeof PORT_NAME, number]>) {
    const clash = taken.find((p) => p.number === number);
    if (clash !== undefined) {
      throw inputError(
        'SIDECAR_INJECT_INVALID',
        w,
        clash.path,
        `port ${number} is also the sidecar's ${role} port (${PORT_NAME[role]}); give the sidecar another one with --${role}-port`,
      );
    }
  }
  if (!relay) return;
  for (const [protocol, number] of Object.entries(RELAY_PORTS)) {
    const clash = taken.find((p) => p.number === number);
    if (clash !== undefined) {
      throw inputError(
        'SIDECAR_INJECT_INVALID',
        w,
        clash.path,
        `port ${number} is also the OTLP/${protocol === 'grpc' ? 'gRPC' : 'HTTP'} port of the sidecar's relay (${ANNOTATION.relay}); a collector in the pod already takes the agent's telemetry: leave the relay off`,
      );
    }
  }
}

/** True when a container's env already sets `name` (a value or valueFrom): the user's choice wins. */
export function envHas(env: YAMLSeq | undefined, name: string): boolean {
  return indexByName(env, name) >= 0;
}

/** The literal value of an env variable, when it has one. */
export function envValue(env: YAMLSeq | undefined, name: string): string | undefined {
  const i = indexByName(env, name);
  const item = i < 0 ? undefined : env!.items[i];
  const value = item !== undefined && !isScalar(item) ? scalarValue((item as YAMLMap).get('value', true)) : undefined;
  return typeof value === 'string' ? value : undefined;
}
