import { isMap, isScalar, isSeq, Pair, Scalar, YAMLSeq, type Node, type YAMLMap } from 'yaml';
import { z } from 'zod';
import { SidecarError } from '../errors/index.ts';
import {
  heldProviders,
  isLiteralKey,
  KEY_PLACEHOLDER,
  keyVariables,
  parseCredentialKeys,
  putBack,
  removedSchema,
  takeOut,
  type CredentialKeys,
  type Removed,
} from './custody.ts';
import { ANNOTATION, COMPOSE_SECRETS_DIR, CONFIG_DIR, CONFIG_KEY, RELAY_PORTS } from './names.ts';
import type { Result } from './manifests.ts';
import type { InjectSettings } from './settings.ts';
import { agentEnv, sidecarEnv, type CredentialFiles } from './sidecar.ts';
import { markRaw, removedText } from './source.ts';
import { parseStatus } from './status.ts';
import { lineIn, parseStream, printStream } from './stream.ts';
import { dropIfEmpty, ensure, mapAt, readMapAt, scalarValue, seqAt, stringMap, text, type Doc } from './tree.ts';
import { change, inputError, type Change, type Path, type Where } from './where.ts';

export interface ComposeOptions {
  source?: string;
  /** The agent's service; without it, uninject takes out every sidecar. */
  service?: string | undefined;
  uninject?: boolean;
  /** The sidecar configuration file as the compose file should name it (relative to it). */
  configMount?: string | undefined;
}

const composeStatusSchema = z.object({
  version: z.string(),
  service: z.string(),
  env: z.array(z.string()),
  /** Moved published ports: where they stood in the agent's list, their value there, and their source text (to put back exactly). */
  ports: z.array(z.object({ index: z.number().int().nonnegative(), original: z.union([z.string(), z.number()]), raw: z.string().optional() })),
  /** The position of the agent's `ports` key, when moving emptied and removed it, and then its source text. */
  portsKey: z.number().int().nonnegative().optional(),
  portsRaw: z.string().optional(),
  created: z.array(z.string()),
  /** Collections created where the key had a null value: that value's source text. */
  nulls: z.record(z.string(), z.string()).optional(),
  /** Credential custody: the secrets the sidecar holds, what was taken out of the agent (to put back), the variables not recorded. */
  credentials: z.object({ secrets: z.array(z.string()), removed: z.array(removedSchema), lost: z.array(z.string()) }).optional(),
});
type ComposeStatus = z.infer<typeof composeStatusSchema>;

/** Variables taken out of an agent service that held literal keys, carried from an uninject to the inject that follows it in one run. */
const lostBefore = new WeakMap<YAMLMap, string[]>();

export const sidecarServiceName = (service: string): string => `${service}-sidecar`;

/**
 * Compose: adds a sidecar service in front of `service`, moves its published port to the
 * sidecar and wires its environment; or takes that out again. Containers in compose do not
 * share a network namespace, so they reach each other by service name.
 */
export function injectCompose(input: string, settings: InjectSettings, options: ComposeOptions): Result {
  const stream = parseStream(input, options.source ?? 'stdin');
  const segment = stream.segments[0];
  const doc = segment?.doc;
  const where = (name?: string): Where => ({
    source: stream.source,
    doc: 1,
    kind: name === undefined ? undefined : 'service',
    name,
    prefix: [],
    line: (p) => (doc === undefined ? undefined : lineIn(doc, stream.lineOf, p)),
  });
  const services = doc !== undefined && isMap(doc.contents) ? mapAt(where(), doc.contents as YAMLMap, 'services', []) : undefined;
  if (segment === undefined || stream.segments.length > 1 || services === undefined) {
    throw inputError('SIDECAR_INJECT_INVALID', where(), ['services'], 'missing: a compose file is one document with a services mapping');
  }
  const changes: Change[] = [];
  let changed = false;
  for (const pair of [...services.items]) {
    const name = String(scalarValue(pair.key));
    const node = pair.value;
    if (!isMap(node)) continue;
    const w = where(name);
    const status = readComposeStatus(w, node as YAMLMap);
    if (status === undefined || (options.service !== undefined && status.service !== options.service)) continue;
    uninject(w, segment.doc, services, name, status, changes);
    changed = true;
  }
  if (!options.uninject) {
    if (options.service === undefined) throw new SidecarError('SIDECAR_USAGE_INVALID', { message: 'inject --compose needs --service NAME, the agent service' });
    changed = inject(where(options.service), segment.doc, services, options.service, settings, options.configMount, changes) || changed;
  }
  segment.changed = changed;
  return { text: printStream(stream), changes };
}

function readComposeStatus(w: Where, service: YAMLMap): ComposeStatus | undefined {
  const labels: Path = ['services', w.name!, 'labels'];
  const raw = stringMap(mapAt(w, service, 'labels', labels.slice(0, 2))).get(ANNOTATION.status);
  return raw === undefined ? undefined : parseStatus(w, [...labels, ANNOTATION.status], raw, composeStatusSchema);
}

/** A published port: its container port, and how to write it with another one. */
function target(item: unknown): { port: number | undefined; node: Scalar; retarget: (n: number) => string | number } | undefined {
  if (isScalar(item)) {
    const v = item.value;
    if (typeof v === 'number') return { port: v, node: item, retarget: (n) => n };
    if (typeof v !== 'string') return undefined;
    // [[ip:]host:]container[/protocol]; only a single container port can move (not a range).
    const [main = '', protocol] = v.split('/');
    const i = main.lastIndexOf(':');
    const container = main.slice(i + 1);
    return {
      port: /^\d+$/.test(container) ? Number(container) : undefined,
      node: item,
      retarget: (n) => `${main.slice(0, i + 1)}${n}${protocol === undefined ? '' : `/${protocol}`}`,
    };
  }
  if (isMap(item)) {
    const node = item.get('target', true);
    if (!(node instanceof Scalar)) return undefined;
    const port = Number(node.value);
    return { port: Number.isInteger(port) ? port : undefined, node, retarget: (n) => n };
  }
  return undefined;
}

/** Returns false when the service opted out. */
function inject(w: Where, doc: Doc, services: YAMLMap, name: string, settings: InjectSettings, configMount: string | undefined, changes: Change[]): boolean {
  const base: Path = ['services', name];
  const agent = mapAt(w, services, name, ['services']);
  if (agent === undefined) {
    const known = services.items.map((p) => String(scalarValue(p.key))).join(', ');
    throw inputError('SIDECAR_INJECT_INVALID', w, base, `no such service; services: ${known}`);
  }
  const labels = stringMap(readMapAt(doc, w, agent, 'labels', base));
  if (labels.get(ANNOTATION.inject) === 'false') {
    changes.push(change(w, [...base, 'labels'], `skipped: ${ANNOTATION.inject} is "false"`));
    return false;
  }
  const sidecarName = sidecarServiceName(name);
  if (services.has(sidecarName))
    throw inputError(
      'SIDECAR_INJECT_INVALID',
      w,
      ['services', sidecarName],
      `a service named ${sidecarName} is there already, but it carries no ${ANNOTATION.status} label; remove or rename it`,
    );

  const ports = seqAt(w, agent, 'ports', base);
  const published = (ports?.items ?? []).map((item) => target(item));
  const exposed = (seqAt(w, agent, 'expose', base)?.items ?? []).map((e) => Number(String(scalarValue(e)).split('/')[0]));
  const wanted = labels.get(ANNOTATION.upstreamPort) ?? settings.upstreamPort;
  const upstream = wanted !== undefined ? Number(wanted) : (published.find((p) => p?.port !== undefined)?.port ?? exposed.find(Number.isInteger));
  if (upstream === undefined || !Number.isInteger(upstream) || upstream < 1 || upstream > 65535) {
    throw inputError(
      'SIDECAR_INJECT_PORT_NOT_FOUND',
      w,
      [...base, 'ports'],
      wanted === undefined
        ? 'the service publishes no port; publish it, or name it with --upstream-port'
        : `${wanted}: expected a port number (compose ports have no names)`,
    );
  }

  // Credential custody: the label, else --credential-keys.
  if (settings.credentialSecret !== undefined) {
    throw new SidecarError('SIDECAR_USAGE_INVALID', {
      message: `--credential-secret names a Kubernetes Secret; in compose each key is a secret of its own: name them with --credential-keys (such as anthropic=anthropic-api-key)`,
    });
  }
  if (labels.has(ANNOTATION.credentialSecret)) {
    throw inputError(
      'SIDECAR_INJECT_INVALID',
      w,
      [...base, 'labels', ANNOTATION.credentialSecret],
      `compose has no Secret of several keys: name each provider's secret with ${ANNOTATION.credentialKeys} (such as anthropic=anthropic-api-key)`,
    );
  }
  const keysLabel = labels.get(ANNOTATION.credentialKeys);
  const keys: CredentialKeys | undefined =
    keysLabel === undefined
      ? settings.credentialKeys
      : parseCredentialKeys(keysLabel, (problem) => {
          throw inputError('SIDECAR_INJECT_INVALID', w, [...base, 'labels', ANNOTATION.credentialKeys], problem);
        });

  const created: string[] = [];
  const nulls: Record<string, string> = {};
  const status: ComposeStatus = { version: settings.version, service: name, env: [], ports: [], created };
  // Moving a node (not a copy) keeps its quoting; uninject moves it back, as its source text.
  const moved: Node[] = [];
  const portsPair = agent.items.find((p) => scalarValue(p.key) === 'ports');
  const portsRaw = portsPair === undefined ? undefined : removedText(doc, agent, portsPair);
  published.forEach((p, index) => {
    if (p?.port !== upstream) return;
    const raw = removedText(doc, ports!, ports!.items[index]);
    status.ports.push({ index, original: p.node.value as string | number, ...(raw === undefined ? {} : { raw }) });
    p.node.value = p.retarget(settings.ports.ingress);
    moved.push(ports!.items[index] as Node);
    changes.push(change(w, [...base, 'ports', index], `moved to ${sidecarName}: ${String(status.ports.at(-1)!.original)} -> ${String(p.node.value)}`));
  });
  for (const node of moved) ports!.items.splice(ports!.items.indexOf(node), 1);
  if (ports !== undefined && ports.items.length === 0 && moved.length > 0) {
    status.portsKey = agent.items.findIndex((p) => scalarValue(p.key) === 'ports');
    if (portsRaw !== undefined) status.portsRaw = portsRaw;
    // The key's text holds the items': theirs is not needed.
    for (const p of status.ports) delete p.raw;
    agent.delete('ports');
  }

  const relay = composeRelay(w, base, labels);
  const held = keys === undefined ? undefined : holdInService(w, doc, agent, base, keys, changes);
  const env = environment(w, agent, base);
  const relayUrl = relay ? `http://${sidecarName}:${RELAY_PORTS.http}` : undefined;
  for (const [key, value] of agentEnv(`http://${sidecarName}:${settings.ports.egress}`, name, settings.otelEndpoint, relayUrl)) {
    if (env.has(key)) {
      changes.push(change(w, [...base, 'environment'], `kept ${key}: set in the compose file, not overridden`));
      continue;
    }
    env.add(doc, key, value, created, nulls);
    status.env.push(key);
    changes.push(change(w, [...base, 'environment'], `added ${key}=${value}`));
  }
  if (held !== undefined) {
    for (const key of held.placeholders) {
      env.add(doc, key, KEY_PLACEHOLDER, created, nulls);
      status.env.push(key);
      changes.push(change(w, [...base, 'environment'], `added ${key}=${KEY_PLACEHOLDER}: the sidecar holds the key`));
    }
    status.credentials = { secrets: held.secrets, removed: held.removed, lost: held.lost };
  }

  if (Object.keys(nulls).length > 0) status.nulls = nulls;
  const copied = Object.fromEntries(
    ['networks', 'restart'].flatMap((key) => {
      const value = agent.get(key, true);
      return value === undefined ? [] : [[key, (value as Node).clone()]];
    }),
  );
  // The sidecar reports under the agent's service name, the user's own if the agent has one.
  const serviceName = env.get('OTEL_SERVICE_NAME') ?? name;
  const sidecar = doc.createNode(
    sidecarService(name, serviceName, upstream, settings, configMount, held, relay, status, { ...(moved.length > 0 ? { ports: moved } : {}), ...copied }),
  );
  const at = services.items.findIndex((p) => scalarValue(p.key) === name);
  services.items.splice(at + 1, 0, new Pair(doc.createNode(sidecarName), sidecar));
  changes.push(
    change(
      w,
      ['services', sidecarName],
      `added (${settings.ports.ingress} ingress, ${settings.ports.egress} egress, ${settings.ports.admin} admin; upstream ${name}:${upstream})`,
    ),
  );
  if (held !== undefined) {
    const files = held.files.map(([p, file]) => `${p} ${file}`).join(', ');
    changes.push(change(w, ['services', sidecarName, 'secrets'], `added ${held.secrets.join(', ')}: the sidecar holds the keys (${files})`));
  }
  if (moved.length === 0)
    changes.push(change(w, [...base, 'ports'], `note: no published port was ${upstream}; clients that call ${name}:${upstream} directly bypass the sidecar`));
  return true;
}

/** The sidecar service; `nodes` are the agent's own (moved ports, copied networks and restart policy). */
function sidecarService(
  name: string,
  serviceName: string,
  upstream: number,
  settings: InjectSettings,
  configMount: string | undefined,
  held: { secrets: string[]; files: CredentialFiles } | undefined,
  relay: boolean,
  status: ComposeStatus,
  nodes: Record<string, unknown>,
): Record<string, unknown> {
  const env = sidecarEnv(settings.ports, `http://${name}:${upstream}`, serviceName, settings.otelEndpoint, configMount !== undefined, held?.files, relay);
  const readyz = `http://127.0.0.1:${settings.ports.admin}/readyz`;
  return {
    image: settings.image,
    depends_on: [name],
    // The agent calls out from its own container, by service name: egress cannot stay on loopback
    // here, nor the relay's OTLP/HTTP receiver (its gRPC one, which the agent is not told of, is off).
    environment: {
      ...Object.fromEntries(env),
      SIDECAR_EGRESS: `0.0.0.0:${settings.ports.egress}`,
      ...(relay ? { SIDECAR_RELAY_HTTP: `0.0.0.0:${RELAY_PORTS.http}`, SIDECAR_RELAY_GRPC: 'off' } : {}),
    },
    ...nodes,
    ...(configMount === undefined ? {} : { volumes: [`${configMount}:${CONFIG_DIR}/${CONFIG_KEY}:ro`] }),
    ...(held === undefined ? {} : { secrets: held.secrets }),
    read_only: true,
    cap_drop: ['ALL'],
    security_opt: ['no-new-privileges:true'],
    // The image has Node but no curl.
    healthcheck: {
      test: ['CMD', 'node', '-e', `fetch('${readyz}').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`],
      interval: '10s',
      timeout: '3s',
      retries: 3,
    },
    labels: { [ANNOTATION.status]: JSON.stringify(status) },
  };
}

/**
 * The agent-sidecar.io/relay label: "true" or "false" (the default). Instrumentation labels
 * are Kubernetes' only (an init container and a shared volume): refused here, not ignored.
 */
function composeRelay(w: Where, base: Path, labels: Map<string, string>): boolean {
  for (const key of [ANNOTATION.injectNodejs, ANNOTATION.injectPython]) {
    const v = labels.get(key);
    if (v !== undefined && v !== 'false') {
      throw inputError(
        'SIDECAR_INJECT_INVALID',
        w,
        [...base, 'labels', key],
        `compose has no init containers to copy instrumentation with: install it in the agent's image (or start the agent with agent-sidecar run --), and set ${ANNOTATION.relay}: "true"`,
      );
    }
  }
  const v = labels.get(ANNOTATION.relay);
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  throw inputError('SIDECAR_INJECT_INVALID', w, [...base, 'labels', ANNOTATION.relay], `${ANNOTATION.relay}: expected "true" or "false", not "${v}"`);
}

/** The service's environment, a mapping or a list of NAME=value, behind one interface. */
function environment(w: Where, service: YAMLMap, base: Path) {
  const node = service.get('environment', true);
  const list = isSeq(node) ? (node as YAMLSeq) : undefined;
  const map = list === undefined ? mapAt(w, service, 'environment', base) : undefined;
  const find = (key: string) => (list?.items ?? []).findIndex((item) => String(scalarValue(item)).split('=')[0] === key);
  return {
    has: (key: string) => (list ? find(key) >= 0 : map?.has(key) === true),
    /** A literal value, when the file gives one. */
    get(key: string): string | undefined {
      if (!list) return text(map, key);
      const i = find(key);
      const item = i < 0 ? '' : String(scalarValue(list.items[i]));
      return item.includes('=') ? item.slice(item.indexOf('=') + 1) : undefined;
    },
    remove(key: string): boolean {
      if (!list) return map?.delete(key) === true;
      const i = find(key);
      if (i >= 0) list.items.splice(i, 1);
      return i >= 0;
    },
    /** Adds to the list, or to the mapping (created when absent, and recorded). */
    add(doc: Doc, key: string, value: string, created: string[], nulls: Record<string, string>) {
      if (list) list.items.push(doc.createNode(`${key}=${value}`));
      else ensure(doc, service, 'environment', mapAt(w, service, 'environment', base), 'map', created, 'environment', nulls).set(key, value);
    },
  };
}

function uninject(w: Where, doc: Doc, services: YAMLMap, sidecarName: string, status: ComposeStatus, changes: Change[]): void {
  const sidecar = services.get(sidecarName, true) as unknown as YAMLMap;
  const agent = mapAt(w, services, status.service, ['services']);
  services.delete(sidecarName);
  changes.push(change(w, ['services', sidecarName], 'removed'));
  if (agent === undefined) return;
  const base: Path = ['services', status.service];
  const env = environment(w, agent, base);
  for (const key of status.env) if (env.remove(key)) changes.push(change(w, [...base, 'environment'], `removed ${key}`));
  // Before the ports: inject took those out first, so their recorded places count what custody took out after them as there.
  if (status.credentials !== undefined) releaseInService(w, doc, agent, base, status.credentials, changes);
  if (status.created.includes('environment')) dropIfEmpty(agent, 'environment', status.nulls?.environment);
  const moved = [...(seqAt(w, sidecar, 'ports', ['services', sidecarName])?.items ?? [])];
  let ports = seqAt(w, agent, 'ports', base);
  let recreated: Pair | undefined;
  if (ports === undefined && status.ports.length > 0) {
    ports = new YAMLSeq();
    recreated = new Pair(new Scalar('ports'), ports);
    agent.items.splice(status.portsKey ?? agent.items.length, 0, recreated);
  }
  status.ports.forEach(({ index, original, raw }, k) => {
    const t = target(moved[k]);
    if (t === undefined) return;
    t.node.value = original;
    ports!.items.splice(index, 0, moved[k]);
    if (raw !== undefined && recreated === undefined) markRaw(moved[k]!, raw);
    changes.push(change(w, [...base, 'ports', index], `moved back from ${sidecarName}: ${String(original)}`));
  });
  // The `ports` key inject removed, as it was written.
  if (recreated !== undefined && status.portsRaw !== undefined) markRaw(recreated, status.portsRaw);
}

interface HeldInService {
  secrets: string[];
  files: CredentialFiles;
  placeholders: string[];
  removed: Removed[];
  lost: string[];
}

/**
 * Holds the keys: the agent service loses the secrets the sidecar gets, and its key
 * variables (from `environment`; the placeholders then win over an `env_file`). The caller
 * adds the placeholders and gives the sidecar the secrets.
 */
function holdInService(w: Where, doc: Doc, agent: YAMLMap, base: Path, keys: CredentialKeys, changes: Change[]): HeldInService {
  const held = heldProviders(keys);
  const { removed: variables, placeholders } = keyVariables(held.map(([p]) => p));
  const secrets = held.map(([, secret]) => secret);
  const top = isMap(doc.contents) ? mapAt(w, doc.contents as YAMLMap, 'secrets', []) : undefined;
  for (const secret of secrets) {
    if (top?.has(secret) !== true) {
      changes.push(
        change(
          w,
          ['secrets'],
          `note: this file defines no secret ${secret}; compose needs one (top-level secrets: ${secret}: { file: ./${secret}.txt } or { environment: VARIABLE })`,
        ),
      );
    }
  }
  const records: Removed[] = [];
  const lost: string[] = [];
  const whole: Array<{ item: unknown; keep: boolean }> = [];

  const list = seqAt(w, agent, 'secrets', base);
  const secretOf = (item: unknown) => (isScalar(item) ? String(item.value) : isMap(item) ? text(item as YAMLMap, 'source') : undefined);
  const taken = (list?.items ?? []).flatMap((item, i) => {
    const secret = secretOf(item);
    if (secret === undefined || !secrets.includes(secret)) return [];
    changes.push(change(w, [...base, 'secrets', i], `removed ${secret}: the sidecar holds it`));
    return [{ item: item as unknown, keep: true }];
  });
  if (taken.length > 0 && taken.length === list!.items.length) whole.push({ item: agent.items.find((p) => scalarValue(p.key) === 'secrets'), keep: true });
  else if (taken.length > 0) records.push(...takeOut(doc, list!, 'secrets', taken));

  const node = agent.get('environment', true) as unknown;
  const envParent = isSeq(node) ? (node as YAMLSeq) : mapAt(w, agent, 'environment', base);
  const entries: Array<{ item: unknown; name: string; value: unknown }> = isSeq(envParent)
    ? envParent.items.map((item) => {
        const entry = String(scalarValue(item));
        const eq = entry.indexOf('=');
        return { item, name: eq < 0 ? entry : entry.slice(0, eq), value: eq < 0 ? null : entry.slice(eq + 1) };
      })
    : (envParent?.items ?? []).map((pair) => ({ item: pair, name: String(scalarValue(pair.key)), value: scalarValue(pair.value) }));
  const envTaken = entries.flatMap(({ item, name, value }) => {
    const provider = variables.get(name);
    if (provider === undefined) return [];
    const literal = isLiteralKey(value);
    const why = `the sidecar holds the ${provider} key`;
    if (literal) {
      lost.push(name);
      changes.push(
        change(
          w,
          [...base, 'environment', name],
          `removed ${name}: ${why}. Its value is a key written into the compose file: inject keeps no copy of it, so --uninject cannot put it back. Keep the key in the secret only, and rotate it`,
        ),
      );
    } else {
      changes.push(change(w, [...base, 'environment', name], `removed ${name}: ${why}`));
    }
    return [{ item, keep: !literal }];
  });
  if (envTaken.length > 0) records.push(...takeOut(doc, envParent!, 'environment', envTaken));
  if (agent.has('env_file')) {
    changes.push(
      change(w, [...base, 'env_file'], `note: a key variable set here is overridden by the placeholder in environment; take the keys out of the file`),
    );
  }
  if (whole.length > 0) records.push(...takeOut(doc, agent, 'service', whole));

  const carried = lostBefore.get(agent) ?? [];
  lostBefore.delete(agent);
  for (const name of carried) if (!lost.includes(name)) lost.push(name);
  return { secrets, files: held.map(([p, secret]) => [p, `${COMPOSE_SECRETS_DIR}/${secret}`]), placeholders, removed: records, lost };
}

/** Undoes holdInService once the added variables are out: puts back what it took. */
function releaseInService(w: Where, doc: Doc, agent: YAMLMap, base: Path, held: NonNullable<ComposeStatus['credentials']>, changes: Change[]): void {
  const whole = held.removed.filter((r) => r.from === 'service');
  putBack(doc, agent, whole);
  for (const r of whole) changes.push(change(w, [...base, r.key ?? '?'], 'put back'));
  for (const key of ['secrets', 'environment']) {
    const records = held.removed.filter((r) => r.from === key);
    const node = agent.get(key, true) as unknown;
    if (records.length === 0 || !(isMap(node) || isSeq(node))) continue;
    putBack(doc, node as YAMLMap | YAMLSeq, records);
    for (const r of records) changes.push(change(w, [...base, key], `put back ${r.key ?? String(r.value).split('=')[0]}`));
  }
  for (const name of held.lost) {
    changes.push(
      change(
        w,
        [...base, 'environment'],
        `note: ${name} is not put back: its value was a key written into the compose file, of which inject kept no copy; the sidecar held it from secret ${held.secrets.join(', ')}`,
      ),
    );
  }
  if (held.lost.length > 0) lostBefore.set(agent, held.lost);
}
