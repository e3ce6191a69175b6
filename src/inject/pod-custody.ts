import { isScalar, type Pair, type YAMLMap, type YAMLSeq } from 'yaml';
import { z } from 'zod';
import type { ProviderName } from '../egress/index.ts';
import type { Agent } from './agent.ts';
import {
  DEFAULT_CREDENTIAL_KEYS,
  heldProviders,
  isLiteralKey,
  isSecretName,
  keyVariables,
  mapIn,
  parseCredentialKeys,
  putBack,
  removedSchema,
  takeOut,
  textIn,
  type CredentialKeys,
  type Removed,
} from './custody.ts';
import { ANNOTATION, CREDENTIAL_DIR, CREDENTIAL_VOLUME, RUN_AS_USER } from './names.ts';
import type { PodTemplate } from './objects.ts';
import type { InjectSettings } from './settings.ts';
import type { CredentialFiles } from './sidecar.ts';
import { ensure, mapAt, mapItems, scalarValue, seqAt, text, type Doc } from './tree.ts';
import { change, inputError, type Change, type Path } from './where.ts';

// Credential custody in a pod: the Secret mounted in the sidecar only, the agent without
// any way to its keys (its key variables, the Secret's envFrom and mounts taken out), and a
// placeholder in its key variables.

/** What the status annotation records of custody, for uninject. */
export const podCustodySchema = z.object({
  secret: z.string(),
  volume: z.string(),
  /** inject set the pod's securityContext.fsGroup. */
  fsGroup: z.boolean(),
  /** The agent's entries it took out, to put back. */
  removed: z.array(removedSchema),
  /** Variables it took out that held a key written into the manifest: not recorded, so not put back. */
  lost: z.array(z.string()),
});
export type PodCustodyStatus = z.infer<typeof podCustodySchema>;

export interface PodCustody {
  secret: string;
  keys: CredentialKeys;
}

/** A workload's custody setting (its annotations, else the flags); undefined when it has none. */
export function podCustody(t: PodTemplate, settings: InjectSettings): PodCustody | undefined {
  const w = t.obj.where;
  const secretAnnotation = t.annotations.get(ANNOTATION.credentialSecret);
  const keysAnnotation = t.annotations.get(ANNOTATION.credentialKeys);
  if (secretAnnotation !== undefined && !isSecretName(secretAnnotation.value)) {
    throw inputError(
      'SIDECAR_INJECT_INVALID',
      w,
      secretAnnotation.path,
      `"${secretAnnotation.value}": expected a Secret name (lowercase letters, digits, - and .)`,
    );
  }
  const secret = secretAnnotation?.value ?? settings.credentialSecret;
  if (secret === undefined) {
    if (keysAnnotation !== undefined) {
      throw inputError(
        'SIDECAR_INJECT_INVALID',
        w,
        keysAnnotation.path,
        `names the keys of no Secret: name it with ${ANNOTATION.credentialSecret} (or --credential-secret)`,
      );
    }
    return undefined;
  }
  const keys =
    keysAnnotation === undefined
      ? (settings.credentialKeys ?? DEFAULT_CREDENTIAL_KEYS)
      : parseCredentialKeys(keysAnnotation.value, (problem) => {
          throw inputError('SIDECAR_INJECT_INVALID', w, keysAnnotation.path, problem);
        });
  return { secret, keys };
}

/** Each held provider's key file in the sidecar container. */
export const podCredentialFiles = (c: PodCustody): CredentialFiles => heldProviders(c.keys).map(([p, key]) => [p, `${CREDENTIAL_DIR}/${key}`]);

/** Volumes of the pod that hold the Secret (a secret volume, or a projected one with it among its sources). */
function secretVolumes(w: PodTemplate['obj']['where'], spec: YAMLMap, specPath: Path, secret: string): Set<string> {
  const names = new Set<string>();
  for (const v of mapItems(w, seqAt(w, spec, 'volumes', specPath), [...specPath, 'volumes'])) {
    const name = text(v, 'name');
    if (name === undefined || name === CREDENTIAL_VOLUME) continue;
    const projected = mapIn(v, 'projected')?.get('sources', true) as YAMLSeq | undefined;
    const inProjected = (projected?.items ?? []).some((s) => textIn(s, 'secret', 'name') === secret);
    if (textIn(v, 'secret', 'secretName') === secret || inProjected) names.add(name);
  }
  return names;
}

/** Where an env entry's value comes from, for the report (never the value itself). */
function envSource(item: YAMLMap): string {
  const secret = mapIn(item, 'valueFrom', 'secretKeyRef');
  if (secret !== undefined) return `from Secret ${text(secret, 'name') ?? '?'}, key ${text(secret, 'key') ?? '?'}`;
  const map = mapIn(item, 'valueFrom', 'configMapKeyRef');
  if (map !== undefined) return `from ConfigMap ${text(map, 'name') ?? '?'}, key ${text(map, 'key') ?? '?'}`;
  if (item.has('valueFrom')) return 'valueFrom';
  return item.has('value') ? 'its value' : 'no value';
}

/** Labels of the agent's taken-out entries, carried from an uninject to the inject that follows it in one run. */
const lostBefore = new WeakMap<YAMLMap, string[]>();

/**
 * Holds the keys in the pod: the pod's fsGroup (when it has none) so that the sidecar may
 * read the Secret's files, and the agent without its key variables, without the Secret's
 * envFrom, env entries and mounts. The caller adds the sidecar (with the volume mounted),
 * the volume and the placeholders. Returns what the status records.
 */
export function holdInPod(
  doc: Doc,
  t: PodTemplate,
  spec: YAMLMap,
  agent: Agent,
  custody: PodCustody,
  created: string[],
  nulls: Record<string, string>,
  changes: Change[],
): PodCustodyStatus {
  const w = t.obj.where;
  const specPath = [...t.path, 'spec'];
  const { secret } = custody;
  const providers: ProviderName[] = heldProviders(custody.keys).map(([p]) => p);
  const { removed: variables } = keyVariables(providers);

  let fsGroup = false;
  const context = mapAt(w, spec, 'securityContext', specPath);
  const contextPath = [...specPath, 'securityContext'];
  if (context?.has('fsGroup') === true) {
    const group = scalarValue(context.get('fsGroup', true));
    if (group !== RUN_AS_USER) {
      changes.push(
        change(
          w,
          [...contextPath, 'fsGroup'],
          `note: kept fsGroup ${String(group)}: the Secret's files belong to that group, which the sidecar's process (user ${RUN_AS_USER}) is in as every container of the pod is`,
        ),
      );
    }
  } else {
    ensure(doc, spec, 'securityContext', context, 'map', created, 'securityContext', nulls).set('fsGroup', RUN_AS_USER);
    fsGroup = true;
    changes.push(
      change(
        w,
        [...contextPath, 'fsGroup'],
        `added fsGroup ${RUN_AS_USER}: the sidecar (user ${RUN_AS_USER}) may then read the Secret's files (mode 0440); Kubernetes gives the pod's other volumes that group too`,
      ),
    );
  }

  const records: Removed[] = [];
  const lost: string[] = [];
  const mounted = secretVolumes(w, spec, specPath, secret);
  const whole: Array<{ item: unknown; keep: boolean }> = [];
  const pairOf = (key: string) => agent.node.items.find((p) => isScalar(p.key) && p.key.value === key) as Pair | undefined;

  // Env entries: the key variables (whatever their source), and anything from the Secret.
  const envPath = [...agent.path, 'env'];
  const env = seqAt(w, agent.node, 'env', agent.path);
  const envTaken: Array<{ item: unknown; keep: boolean }> = [];
  for (const [i, item] of mapItems(w, env, envPath).entries()) {
    const name = text(item, 'name') ?? '?';
    const provider = variables.get(name);
    if (provider === undefined && textIn(item, 'valueFrom', 'secretKeyRef', 'name') !== secret) continue;
    const why = provider === undefined ? `Secret ${secret} is for the sidecar only` : `the sidecar holds the ${provider} key`;
    const literal = item.has('value') && isLiteralKey(scalarValue(item.get('value', true)));
    envTaken.push({ item, keep: !literal });
    if (literal) {
      lost.push(name);
      changes.push(
        change(
          w,
          [...envPath, i],
          `removed ${name}: ${why}. Its value is a key written into the manifest: inject keeps no copy of it, so --uninject cannot put it back. Keep the key in Secret ${secret} only, and rotate it`,
        ),
      );
    } else {
      changes.push(change(w, [...envPath, i], `removed ${name} (${envSource(item)}): ${why}`));
    }
  }
  if (envTaken.length > 0) records.push(...takeOut(doc, env!, 'env', envTaken));

  // envFrom and volume mounts of the Secret; a list left empty goes with its key.
  const lists: Array<[key: 'envFrom' | 'volumeMounts', matches: (item: YAMLMap) => boolean, what: (item: YAMLMap) => string]> = [
    ['envFrom', (item) => textIn(item, 'secretRef', 'name') === secret, () => `removed secretRef ${secret}: the Secret is for the sidecar only`],
    [
      'volumeMounts',
      (item) => mounted.has(text(item, 'name') ?? ''),
      (item) =>
        `removed the mount of volume ${text(item, 'name') ?? '?'} at ${text(item, 'mountPath') ?? '?'}: it holds Secret ${secret}, which is for the sidecar only`,
    ],
  ];
  for (const [key, matches, what] of lists) {
    const seq = seqAt(w, agent.node, key, agent.path);
    const items = mapItems(w, seq, [...agent.path, key]);
    const taken = items.flatMap((item, i) => {
      if (!matches(item)) return [];
      changes.push(change(w, [...agent.path, key, i], what(item)));
      return [{ item: item as unknown, keep: true }];
    });
    if (taken.length === 0) continue;
    if (taken.length === items.length) whole.push({ item: pairOf(key), keep: true });
    else records.push(...takeOut(doc, seq!, key, taken));
  }
  if (whole.length > 0) records.push(...takeOut(doc, agent.node, 'container', whole));

  const carried = lostBefore.get(t.template) ?? [];
  lostBefore.delete(t.template);
  for (const name of carried) if (!lost.includes(name)) lost.push(name);
  return { secret, volume: CREDENTIAL_VOLUME, fsGroup, removed: records, lost };
}

/** Undoes holdInPod after the sidecar, the volumes and the added variables are out: puts back what it took. */
export function releaseInPod(
  doc: Doc,
  t: PodTemplate,
  spec: YAMLMap | undefined,
  agentNode: YAMLMap | undefined,
  agentPath: Path,
  status: PodCustodyStatus,
  changes: Change[],
): void {
  const w = t.obj.where;
  const specPath = [...t.path, 'spec'];
  if (agentNode !== undefined) {
    const whole = status.removed.filter((r) => r.from === 'container');
    putBack(doc, agentNode, whole);
    for (const r of whole) changes.push(change(w, [...agentPath, r.key ?? '?'], 'put back'));
    for (const key of ['env', 'envFrom', 'volumeMounts']) {
      const records = status.removed.filter((r) => r.from === key);
      const seq = seqAt(w, agentNode, key, agentPath);
      if (records.length === 0 || seq === undefined) continue;
      putBack(doc, seq, records);
      for (const r of records) changes.push(change(w, [...agentPath, key, r.index], `put back ${describeRecord(key, r.value)}`));
    }
  }
  for (const name of status.lost) {
    changes.push(
      change(
        w,
        [...agentPath, 'env'],
        `note: ${name} is not put back: its value was a key written into the manifest, of which inject kept no copy; the sidecar held it from Secret ${status.secret}`,
      ),
    );
  }
  if (status.lost.length > 0) lostBefore.set(t.template, status.lost);
  const context = spec === undefined ? undefined : mapAt(w, spec, 'securityContext', specPath);
  if (status.fsGroup && context?.delete('fsGroup') === true) changes.push(change(w, [...specPath, 'securityContext'], 'removed fsGroup'));
}

/** An entry put back, as the report names it. */
function describeRecord(key: string, value: unknown): string {
  const v = (value ?? {}) as { name?: unknown; secretRef?: { name?: unknown } };
  if (key === 'env') return String(v.name);
  if (key === 'envFrom') return `secretRef ${String(v.secretRef?.name)}`;
  return `the mount of volume ${String(v.name)}`;
}
