import { z } from 'zod';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readTextCapped } from '../files/index.ts';
import { parseYaml, YamlError } from '../files/index.ts';
import { acceptsAt, coerceText, schemasAt } from './coerce.ts';
import { redactSubstituted, substituteEnv, type Substitution } from './env.ts';
import { configSchema, type SidecarConfig } from './schema.ts';

/** The common keys that flags and SIDECAR_* variables may override. */
export interface ConfigOverrides {
  listen?: string | undefined;
  upstream?: string | undefined;
  admin?: string | undefined;
  egress?: string | undefined;
  logLevel?: string | undefined;
  /** Files holding provider keys: egress.providers.<name>.credential becomes { file }. */
  credentialFiles?: Partial<Record<CredentialProvider, string>> | undefined;
  /** telemetry.relay.enabled (SIDECAR_RELAY=on or off): how `inject` turns the relay on in a pod. */
  relay?: boolean | undefined;
  /** telemetry.relay.grpc and .http: an address, or false for none (SIDECAR_RELAY_GRPC, SIDECAR_RELAY_HTTP: an address or off). */
  relayGrpc?: string | false | undefined;
  relayHttp?: string | false | undefined;
}

type CredentialProvider = 'anthropic' | 'openai';

/**
 * The variables that set egress.providers.<name>.credential to { file: VALUE }, replacing
 * whatever the file says there: how `inject` hands the sidecar container the keys it
 * mounts for it.
 */
export const CREDENTIAL_FILE_VARIABLES: Readonly<Record<CredentialProvider, string>> = {
  anthropic: 'SIDECAR_ANTHROPIC_CREDENTIAL_FILE',
  openai: 'SIDECAR_OPENAI_CREDENTIAL_FILE',
};

export interface LoadOptions {
  /** Path of a YAML file; without it the defaults apply. */
  file?: string | undefined;
  /** A document under the file (the demo's embedded settings): the file's keys win. */
  base?: Record<string, unknown>;
  /** Flags given on the command line: they win over the environment and the file. */
  overrides?: ConfigOverrides;
  env?: NodeJS.ProcessEnv;
}

/**
 * Loads the configuration exactly as `run` does: read, parse, substitute ${env:…}, apply
 * overrides, validate against the one schema (which applies every default), freeze.
 * Throws a SidecarError whose message names each bad key and what it allows.
 */
export function loadConfig(options: LoadOptions = {}): Readonly<SidecarConfig> {
  const env = options.env ?? process.env;
  const raw = options.file === undefined ? {} : readYaml(options.file);
  const found: Substitution[] = [];
  // A copy: the overrides below write into the document, never into the caller's base.
  const doc = merge(structuredClone(options.base ?? {}), dropNulls(substituteEnv(raw, env, found)) as Record<string, unknown>);
  applyOverrides(doc, envOverrides(env));
  applyOverrides(doc, options.overrides ?? {});
  const texts = applySchemaTypes(doc, found);
  let config: Readonly<SidecarConfig>;
  try {
    config = validateConfig(doc, options.file);
  } catch (err) {
    throw redactError(err, texts);
  }
  SUBSTITUTED.set(config, texts);
  return config;
}

const SUBSTITUTED = new WeakMap<object, readonly Substitution[]>();

/**
 * An error about a loaded configuration, with every text substituted from the environment
 * replaced by its reference (\${env:NAME}): a message, a log line or a report never carries
 * a secret that came from a variable. Errors that are not SidecarErrors pass unchanged.
 */
export function redactConfigError(err: unknown, config: Readonly<SidecarConfig>): unknown {
  return redactError(err, SUBSTITUTED.get(config) ?? []);
}

function redactError(err: unknown, texts: readonly Substitution[]): unknown {
  if (!(err instanceof SidecarError) || texts.length === 0) return err;
  const message = redactSubstituted(err.message, texts);
  const details = err.details === undefined ? undefined : (JSON.parse(redactSubstituted(JSON.stringify(err.details), texts)) as Record<string, unknown>);
  if (message === err.message && details === err.details) return err;
  // The cause is left out: its message (a parser's, the system's) may quote the value.
  return new SidecarError(err.code, { message, ...(details === undefined ? {} : { details }) });
}

/**
 * A whole \${env:…} value takes the type the schema asks for at its key (a number, a
 * boolean) when its text is one; otherwise it stays text. Returns the substitutions that
 * are still text in the document: those a message must never show.
 */
function applySchemaTypes(doc: Record<string, unknown>, found: readonly Substitution[]): Substitution[] {
  const texts: Substitution[] = [];
  for (const f of found) {
    if (!f.whole) {
      texts.push(f);
      continue;
    }
    const parent = f.path
      .slice(0, -1)
      .reduce<unknown>((node, k) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[k] : undefined), doc);
    const key = f.path.at(-1);
    if (key === undefined || parent === null || typeof parent !== 'object' || (parent as Record<string, unknown>)[key] !== f.text) continue;
    const value = coerceText(f.text, acceptsAt(configSchema, f.path));
    (parent as Record<string, unknown>)[key] = value;
    if (typeof value === 'string') texts.push(f);
  }
  return texts;
}

export function validateConfig(doc: unknown, source = 'configuration'): Readonly<SidecarConfig> {
  const result = configSchema.safeParse(doc);
  if (!result.success) {
    const problems = result.error.issues.map(describeIssue);
    throw new SidecarError('SIDECAR_CONFIG_INVALID', {
      message: `${source} is not valid:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      details: { problems },
    });
  }
  return deepFreeze(result.data);
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readTextCapped(file, FILE_LIMITS.config);
  } catch (cause) {
    throw new SidecarError('SIDECAR_CONFIG_UNREADABLE', { message: `cannot read ${file}: ${(cause as Error).message}`, cause });
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    if (!(err instanceof YamlError)) throw err;
    throw new SidecarError('SIDECAR_CONFIG_PARSE', { message: `${file} is not valid YAML:\n${err.problems.map((p) => `  - ${p}`).join('\n')}` });
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new SidecarError('SIDECAR_CONFIG_INVALID', { message: `${file}: the top level must be a mapping of keys` });
  }
  return value;
}

function envOverrides(env: NodeJS.ProcessEnv): ConfigOverrides {
  return {
    listen: env.SIDECAR_LISTEN || undefined,
    upstream: env.SIDECAR_UPSTREAM || undefined,
    admin: env.SIDECAR_ADMIN || undefined,
    egress: env.SIDECAR_EGRESS || undefined,
    logLevel: env.SIDECAR_LOG_LEVEL || undefined,
    relay: onOff('SIDECAR_RELAY', env.SIDECAR_RELAY),
    relayGrpc: addressOrOff(env.SIDECAR_RELAY_GRPC),
    relayHttp: addressOrOff(env.SIDECAR_RELAY_HTTP),
    credentialFiles: Object.fromEntries(
      Object.entries(CREDENTIAL_FILE_VARIABLES).flatMap(([provider, name]) => (env[name] ? [[provider, env[name]]] : [])),
    ) as Partial<Record<CredentialProvider, string>>,
  };
}

/** A variable that turns something on or off: on/off, true/false, 1/0; unset or empty: not given. */
function onOff(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  const v = value.toLowerCase();
  if (v === 'on' || v === 'true' || v === '1') return true;
  if (v === 'off' || v === 'false' || v === '0') return false;
  throw new SidecarError('SIDECAR_CONFIG_INVALID', { message: `${name}=${value}: expected on or off` });
}

/** A receiver's address, or off (also false, 0) for none; unset or empty: not given. The address itself is checked by the schema. */
function addressOrOff(value: string | undefined): string | false | undefined {
  if (value === undefined || value === '') return undefined;
  return ['off', 'false', '0'].includes(value.toLowerCase()) ? false : value;
}

function applyOverrides(doc: Record<string, unknown>, o: ConfigOverrides): void {
  if (o.listen !== undefined) section(doc, 'listen').address = o.listen;
  if (o.upstream !== undefined) section(doc, 'upstream').url = o.upstream;
  if (o.admin !== undefined) section(doc, 'admin').address = o.admin;
  if (o.egress !== undefined) section(doc, 'egress').address = o.egress;
  if (o.logLevel !== undefined) section(doc, 'log').level = o.logLevel;
  if (o.relay !== undefined) section(section(doc, 'telemetry'), 'relay').enabled = o.relay;
  if (o.relayGrpc !== undefined) section(section(doc, 'telemetry'), 'relay').grpc = o.relayGrpc;
  if (o.relayHttp !== undefined) section(section(doc, 'telemetry'), 'relay').http = o.relayHttp;
  for (const [provider, file] of Object.entries(o.credentialFiles ?? {})) {
    if (file !== undefined) section(section(section(doc, 'egress'), 'providers'), provider).credential = { file };
  }
}

function section(doc: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = doc[key];
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  const fresh: Record<string, unknown> = {};
  doc[key] = fresh;
  return fresh;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.') || '(root)';
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length > 0 ? `${path}.` : '';
    return `${issue.keys.map((k) => where + k).join(', ')}: unknown key; see config/sidecar.example.yaml for the keys allowed here`;
  }
  // A record's key: say what is wrong with it, not only that it is.
  if (issue.code === 'invalid_key' && issue.issues.length > 0) return `${path}: invalid key: ${issue.issues.map((i) => i.message).join('; ')}`;
  return `${path}: ${issue.message}`;
}

function merge(under: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...under };
  for (const [k, v] of Object.entries(over)) {
    const u = out[k];
    const bothObjects = [u, v].every((x) => x !== null && typeof x === 'object' && !Array.isArray(x));
    out[k] = bothObjects ? merge(u as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/**
 * `key:` with nothing after it (or only comments) means unset, as it reads. Only for keys
 * the schema has: an unknown key stays, null or not, and is refused as unknown.
 */
function dropNulls(value: unknown, path: string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v, i) => dropNulls(v, [...path, String(i)]));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const at = [...path, k];
    if (v !== null) out[k] = dropNulls(v, at);
    else if (schemasAt(configSchema, at).length === 0) out[k] = null;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
