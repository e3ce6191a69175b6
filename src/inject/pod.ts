import { isMap, isScalar, type YAMLMap } from 'yaml';
import { checkPorts, envHas, envValue, findAgent, type Agent } from './agent.ts';
import { heldProviders, KEY_PLACEHOLDER, keyVariables } from './custody.ts';
import { ANNOTATION, CONFIG_VOLUME, CREDENTIAL_MODE, CREDENTIAL_VOLUME, RELAY_PORTS, SIDECAR_CONTAINER } from './names.ts';
import { addInstrumentation, checkInstrumentation, removeInstrumentation, wantedInstrumentation, type InstrumentationStatus } from './instrumentation.ts';
import type { PodTemplate } from './objects.ts';
import { holdInPod, podCredentialFiles, podCustody, releaseInPod, type PodCustodyStatus } from './pod-custody.ts';
import type { InjectSettings } from './settings.ts';
import { agentEnv, configVolume, credentialVolume, sidecarContainer } from './sidecar.ts';
import { podStatusSchema, readStatus, removeStatus, writeStatus, type PodStatus } from './status.ts';
import { dropIfEmpty, ensure, indexByName, mapAt, removeByName, seqAt, type Doc } from './tree.ts';
import { change, inputError, type Change } from './where.ts';

/** What the Service rewrite needs to know about an injected workload. */
export interface Injected {
  t: PodTemplate;
  agent: Agent;
  configMap: string;
}

/** Puts the sidecar into a pod template and wires the agent container; records a status for uninject. */
export function injectPod(doc: Doc, t: PodTemplate, settings: InjectSettings, changes: Change[]): Injected {
  const w = t.obj.where;
  const specPath = [...t.path, 'spec'];
  const spec = mapAt(w, t.template, 'spec', t.path);
  if (spec === undefined) throw inputError('SIDECAR_INJECT_INVALID', w, specPath, 'missing: a pod template needs a spec');
  const containers = seqAt(w, spec, 'containers', specPath);
  if (containers === undefined || containers.items.length === 0)
    throw inputError('SIDECAR_INJECT_INVALID', w, [...specPath, 'containers'], 'missing: a pod needs at least one container');
  const initContainers = seqAt(w, spec, 'initContainers', specPath);
  const volumes = seqAt(w, spec, 'volumes', specPath);
  for (const [key, seq] of [
    ['containers', containers],
    ['initContainers', initContainers],
  ] as const) {
    const i = indexByName(seq, SIDECAR_CONTAINER);
    if (i >= 0)
      throw inputError(
        'SIDECAR_INJECT_INVALID',
        w,
        [...specPath, key, i, 'name'],
        `a container named ${SIDECAR_CONTAINER} is there already, but no ${ANNOTATION.status} annotation says what was injected; remove it or rename it`,
      );
  }
  const custody = podCustody(t, settings);
  for (const name of custody === undefined ? [CONFIG_VOLUME] : [CONFIG_VOLUME, CREDENTIAL_VOLUME]) {
    const v = indexByName(volumes, name);
    if (v >= 0) throw inputError('SIDECAR_INJECT_INVALID', w, [...specPath, 'volumes', v, 'name'], `a volume named ${name} is there already; rename it`);
  }

  const agent = findAgent(t, containers, settings);
  const instrumentation = wantedInstrumentation(t);
  const relay = relayWanted(t, instrumentation.length > 0);
  checkInstrumentation(t, agent, initContainers, volumes, instrumentation);
  t.obj.segment.changed = true;
  checkPorts(
    t,
    [
      ['containers', containers],
      ['initContainers', initContainers],
    ],
    agent,
    settings,
    relay,
  );
  const image = t.annotations.get(ANNOTATION.image)?.value ?? settings.image;
  const configMap = t.annotations.get(ANNOTATION.config)?.value ?? settings.configMap;
  const created: string[] = [];
  const nulls: Record<string, string> = {};
  const agentEnvSeq = seqAt(w, agent.node, 'env', agent.path);
  // The sidecar reports under the agent's service name, the user's own if the agent has one.
  const serviceName = envValue(agentEnvSeq, 'OTEL_SERVICE_NAME') ?? t.name;

  const credentials = custody === undefined ? undefined : podCredentialFiles(custody);
  const container = doc.createNode(sidecarContainer({ settings, image, upstreamPort: agent.port, serviceName, credentials, relay }));
  const what = `${SIDECAR_CONTAINER} (${image}; ports ${settings.ports.ingress} ingress, ${settings.ports.egress} egress, ${settings.ports.admin} admin; upstream 127.0.0.1:${agent.port})`;
  if (settings.native) {
    const init = ensure(doc, spec, 'initContainers', initContainers, 'seq', created, 'initContainers', nulls);
    // First, so that it runs before any other init container that may call out.
    init.items.unshift(container);
    changes.push(change(w, [...specPath, 'initContainers'], `added native sidecar ${what}`));
  } else {
    containers.items.push(container);
    changes.push(change(w, [...specPath, 'containers'], `added container ${what}`));
    if (t.obj.kind === 'Job' || t.obj.kind === 'CronJob') {
      changes.push(
        change(
          w,
          [...specPath, 'containers'],
          "note: a regular sidecar keeps a Job's pod running after the agent exits; use --native-sidecar (Kubernetes 1.29+)",
        ),
      );
    }
  }
  const podVolumes = ensure(doc, spec, 'volumes', volumes, 'seq', created, 'volumes', nulls);
  podVolumes.items.push(doc.createNode(configVolume(configMap)));
  changes.push(change(w, [...specPath, 'volumes'], `added volume ${CONFIG_VOLUME} (ConfigMap ${configMap})`));
  let held: PodCustodyStatus | undefined;
  if (custody !== undefined) {
    const volume = doc.createNode(credentialVolume(custody.secret));
    // YAML readers differ on 0440 (YAML 1.1 octal, 1.2 decimal): the number, and the mode as people write it
    // (in a comment, which only block style can end a line with).
    const mode = volume.getIn(['secret', 'defaultMode'], true);
    if (isScalar(mode) && !spec.flow && !podVolumes.flow) mode.comment = ` ${CREDENTIAL_MODE.toString(8).padStart(4, '0')}`;
    podVolumes.items.push(volume);
    const files = (credentials ?? []).map(([p, file]) => `${p} ${file}`).join(', ');
    changes.push(
      change(w, [...specPath, 'volumes'], `added volume ${CREDENTIAL_VOLUME} (Secret ${custody.secret}), mounted in ${SIDECAR_CONTAINER} only: ${files}`),
    );
    held = holdInPod(doc, t, spec, agent, custody, created, nulls, changes);
  }

  const env = ensure(doc, agent.node, 'env', seqAt(w, agent.node, 'env', agent.path), 'seq', created, 'env', nulls);
  const added: string[] = [];
  const relayUrl = relay ? `http://127.0.0.1:${RELAY_PORTS.http}` : undefined;
  for (const [name, value] of agentEnv(`http://127.0.0.1:${settings.ports.egress}`, t.name, settings.otelEndpoint, relayUrl)) {
    if (envHas(env, name)) {
      changes.push(change(w, [...agent.path, 'env'], `kept ${name}: set in the manifest, not overridden`));
      continue;
    }
    env.items.push(doc.createNode({ name, value }));
    added.push(name);
    changes.push(change(w, [...agent.path, 'env'], `added ${name}=${value}`));
  }
  const instrumented: InstrumentationStatus | undefined =
    instrumentation.length === 0 ? undefined : addInstrumentation(doc, t, spec, agent, env, instrumentation, created, nulls, changes);
  if (custody !== undefined) {
    for (const name of keyVariables(heldProviders(custody.keys).map(([p]) => p)).placeholders) {
      env.items.push(doc.createNode({ name, value: KEY_PLACEHOLDER }));
      added.push(name);
      changes.push(change(w, [...agent.path, 'env'], `added ${name}=${KEY_PLACEHOLDER}: the sidecar holds the key`));
    }
    changes.push(
      change(
        w,
        [],
        `note: the agent's service account must not be allowed to get Secret ${custody.secret}, or the agent can read the keys from the API server`,
      ),
    );
  }
  if (agent.node.has('envFrom')) {
    changes.push(change(w, [...agent.path, 'envFrom'], 'note: a variable set here (from a ConfigMap or Secret) is overridden by the env entries added above'));
  }
  if (added.length === 0 && (instrumented?.env.length ?? 0) === 0 && created.includes('env')) {
    // Nothing of ours went in: leave the container as it was.
    dropIfEmpty(agent.node, 'env', nulls.env);
    created.splice(created.indexOf('env'), 1);
    delete nulls.env;
  }
  const status: PodStatus = {
    version: settings.version,
    container: SIDECAR_CONTAINER,
    native: settings.native,
    agent: agent.name,
    env: added,
    volume: CONFIG_VOLUME,
    ...(held === undefined ? {} : { credentials: held }),
    ...(instrumented === undefined ? {} : { instrumentation: instrumented }),
    created,
    ...(Object.keys(nulls).length > 0 ? { nulls } : {}),
  };
  writeStatus(doc, w, t.template, t.path, status);
  changes.push(change(w, [...t.path, 'metadata', 'annotations', ANNOTATION.status], 'recorded what was injected'));
  return { t, agent, configMap };
}

/** Removes exactly what the status annotation says inject added. Returns false when there is none. */
export function uninjectPod(t: PodTemplate, changes: Change[]): boolean {
  const w = t.obj.where;
  const status = readStatus(w, t.template, t.path, podStatusSchema);
  if (status === undefined) return false;
  t.obj.segment.changed = true;
  const specPath = [...t.path, 'spec'];
  const spec = mapAt(w, t.template, 'spec', t.path);
  const list = status.native ? 'initContainers' : 'containers';
  const containers = spec === undefined ? undefined : seqAt(w, spec, list, specPath);
  if (removeByName(containers, status.container)) changes.push(change(w, [...specPath, list], `removed ${status.container}`));
  const volumes = spec === undefined ? undefined : seqAt(w, spec, 'volumes', specPath);
  for (const volume of [status.volume, ...(status.credentials === undefined ? [] : [status.credentials.volume])]) {
    if (removeByName(volumes, volume)) changes.push(change(w, [...specPath, 'volumes'], `removed volume ${volume}`));
  }
  const main = spec === undefined ? undefined : seqAt(w, spec, 'containers', specPath);
  const i = indexByName(main, status.agent);
  const agent = i >= 0 && isMap(main!.items[i]) ? (main!.items[i] as YAMLMap) : undefined;
  const path = [...specPath, 'containers', Math.max(i, 0)];
  if (agent !== undefined) {
    const env = seqAt(w, agent, 'env', path);
    for (const name of status.env) if (removeByName(env, name)) changes.push(change(w, [...path, 'env'], `removed ${name}`));
  }
  if (status.instrumentation !== undefined) removeInstrumentation(spec, agent, path, specPath, status.instrumentation, changes, w);
  if (status.credentials !== undefined) releaseInPod(t.obj.segment.doc, t, spec, agent, path, status.credentials, changes);
  if (agent !== undefined && status.created.includes('env')) dropIfEmpty(agent, 'env', status.nulls?.env);
  if (agent !== undefined && status.created.includes('agentVolumeMounts')) dropIfEmpty(agent, 'volumeMounts', status.nulls?.agentVolumeMounts);
  for (const key of ['initContainers', 'volumes', 'securityContext'] as const) if (status.created.includes(key)) dropIfEmpty(spec, key, status.nulls?.[key]);
  removeStatus(t.template, status.created, status.nulls);
  changes.push(change(w, [...t.path, 'metadata', 'annotations', ANNOTATION.status], 'removed'));
  return true;
}

/** agent-sidecar.io/relay: "true" or "false" (the default; "true" when the agent is instrumented, which exports to it). */
function relayWanted(t: PodTemplate, instrumented: boolean): boolean {
  const a = t.annotations.get(ANNOTATION.relay);
  if (a === undefined) return instrumented;
  if (a.value === 'true') return true;
  if (a.value === 'false' && instrumented) {
    throw inputError(
      'SIDECAR_INJECT_INVALID',
      t.obj.where,
      a.path,
      `"false", but ${ANNOTATION.injectNodejs} or ${ANNOTATION.injectPython} instruments the agent, whose telemetry goes through the relay: leave this annotation off`,
    );
  }
  if (a.value === 'false') return false;
  throw inputError('SIDECAR_INJECT_INVALID', t.obj.where, a.path, `${ANNOTATION.relay}: expected "true" or "false", not "${a.value}"`);
}
