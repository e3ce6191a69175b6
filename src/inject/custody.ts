import { isMap, isPair, type YAMLMap, type YAMLSeq } from 'yaml';
import { z } from 'zod';
import { CREDENTIAL_FILE_VARIABLES } from '../config/index.ts';
import { KEY_PLACEHOLDER, sdkKeyVariables, type ProviderName } from '../egress/index.ts';
import { itemSource, markPutBack } from './source.ts';
import type { EnvPairs } from './sidecar.ts';
import { scalarValue, type Doc } from './tree.ts';

// Credential custody: the sidecar holds the provider keys, the agent gets a placeholder.
// What both Kubernetes and compose injection need: the setting's syntax, the variables, and
// taking the agent's own key entries out in a way uninject can put back as they were written.

export { KEY_PLACEHOLDER };

export const PROVIDERS: readonly ProviderName[] = ['anthropic', 'openai'];

/** Which key of the Secret (compose: which secret) holds which provider's key. */
export type CredentialKeys = Partial<Record<ProviderName, string>>;

export const DEFAULT_CREDENTIAL_KEYS: Readonly<Record<ProviderName, string>> = { anthropic: 'anthropic-api-key', openai: 'openai-api-key' };

/** A Kubernetes object name (a DNS subdomain), as a Secret's name must be. */
export const isSecretName = (s: string): boolean => /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(s);

/** A Secret's data key, which is also a file name in its volume (and a valid compose secret name). */
const isKeyName = (s: string): boolean => /^[-._a-zA-Z0-9]{1,253}$/.test(s) && s !== '.' && !s.startsWith('..');

/**
 * Parses `anthropic=anthropic-api-key,openai=openai-api-key`: providers, each with the key
 * that holds its key (the default name when `=key` is left out). A provider not listed is
 * not held. `fail` throws, with the problem, in the caller's style (a flag, an annotation).
 */
export function parseCredentialKeys(text: string, fail: (problem: string) => never): CredentialKeys {
  const keys: CredentialKeys = {};
  const entries = text.split(',').map((e) => e.trim());
  if (entries.every((e) => e === '')) fail('expected providers and their keys, such as anthropic=anthropic-api-key,openai=openai-api-key');
  for (const entry of entries) {
    if (entry === '') fail(`"${text}": an empty entry; separate providers with single commas`);
    const eq = entry.indexOf('=');
    const provider = (eq < 0 ? entry : entry.slice(0, eq)).trim();
    if (!(PROVIDERS as readonly string[]).includes(provider)) fail(`"${provider}": not a provider; expected ${PROVIDERS.join(' or ')}`);
    const p = provider as ProviderName;
    if (keys[p] !== undefined) fail(`${p} is named twice`);
    const key = eq < 0 ? DEFAULT_CREDENTIAL_KEYS[p] : entry.slice(eq + 1).trim();
    if (!isKeyName(key)) fail(`"${key}": expected a key name (letters, digits, -, _ and .), such as ${DEFAULT_CREDENTIAL_KEYS[p]}`);
    keys[p] = key;
  }
  return keys;
}

/** The held providers in a stable order, with their keys. */
export const heldProviders = (keys: CredentialKeys): Array<[ProviderName, string]> => PROVIDERS.flatMap((p) => (keys[p] === undefined ? [] : [[p, keys[p]]]));

/**
 * For the held providers: the variables the agent must not have (the key variables, and
 * Anthropic's bearer token), each with its provider, and the ones that get the placeholder.
 */
export function keyVariables(providers: readonly ProviderName[]): { removed: Map<string, ProviderName>; placeholders: string[] } {
  const removed = new Map<string, ProviderName>();
  const placeholders: string[] = [];
  for (const p of providers) {
    const { key, others } = sdkKeyVariables(p);
    for (const name of [key, ...others]) removed.set(name, p);
    placeholders.push(key);
  }
  return { removed, placeholders };
}

/** The sidecar's variables that point each held provider's credential at its file. */
export const credentialEnv = (files: ReadonlyArray<[ProviderName, string]>): EnvPairs => files.map(([p, file]) => [CREDENTIAL_FILE_VARIABLES[p], file]);

/**
 * A value that is a key written into the manifest itself (not a reference to one, not
 * empty, not the placeholder). Inject keeps no copy of it: the status it records is
 * readable wherever the manifest is (a pod's annotations, a container's labels).
 */
export function isLiteralKey(value: unknown): boolean {
  if (value === null || value === undefined || value === '' || value === KEY_PLACEHOLDER) return false;
  return typeof value !== 'string' || !value.includes('$');
}

/** An item inject took out of the agent (an env entry, a mount, a whole key): enough to put it back as it was written. */
export const removedSchema = z.object({
  /** The collection it was in, as the caller names it ('env', 'envFrom', 'container', …). */
  from: z.string(),
  /** Its position there once inject's own entries and the keys it does not keep are left out. */
  index: z.number().int().nonnegative(),
  /** A mapping's key, when the item was a key and its value. */
  key: z.string().optional(),
  value: z.unknown(),
  raw: z.string().optional(),
  text: z.string().optional(),
  before: z.string().optional(),
  after: z.string().optional(),
});
export type Removed = z.infer<typeof removedSchema>;

const toJS = (node: unknown): unknown => (node !== null && typeof node === 'object' && 'toJSON' in node ? (node as { toJSON(): unknown }).toJSON() : node);

/**
 * Takes `items` out of `parent`, all at once. Those with `keep` are recorded for uninject,
 * each at its index in the list uninject rebuilds (in which the others, literal keys, are
 * missing); the others are not recorded at all. Returns the records, in order.
 */
export function takeOut(doc: Doc, parent: YAMLMap | YAMLSeq, from: string, items: ReadonlyArray<{ item: unknown; keep: boolean }>): Removed[] {
  const records: Removed[] = [];
  const all = parent.items as unknown[];
  let lost = 0;
  for (const [i, node] of all.entries()) {
    const taken = items.find((t) => t.item === node);
    if (taken === undefined) continue;
    if (!taken.keep) {
      lost++;
      continue;
    }
    const source = itemSource(doc, parent, node);
    const record: Removed = isPair(node)
      ? { from, index: i - lost, key: String(scalarValue(node.key)), value: toJS(node.value) ?? null, ...source }
      : { from, index: i - lost, value: toJS(node) ?? null, ...source };
    records.push(record);
  }
  parent.items = all.filter((node) => !items.some((t) => t.item === node)) as never;
  return records;
}

/** Puts back what takeOut recorded from `parent`, at its places, to print as it was written. */
export function putBack(doc: Doc, parent: YAMLMap | YAMLSeq, records: readonly Removed[]): void {
  const put: Array<{ node: object; source: Removed }> = [];
  for (const r of [...records].sort((a, b) => a.index - b.index)) {
    if (isMap(parent) !== (r.key !== undefined)) continue;
    const node = r.key !== undefined ? doc.createPair(r.key, r.value) : doc.createNode(r.value);
    (parent.items as unknown[]).splice(Math.min(r.index, parent.items.length), 0, node);
    put.push({ node: node as object, source: r });
  }
  markPutBack(parent, put);
}

/** The mapping at `key` of an item, when it is one. */
export function mapIn(node: unknown, ...keys: string[]): YAMLMap | undefined {
  let at: unknown = node;
  for (const k of keys) {
    if (!isMap(at)) return undefined;
    at = at.get(k, true);
  }
  return isMap(at) ? (at as YAMLMap) : undefined;
}

/** A string scalar at a path of mappings. */
export function textIn(node: unknown, ...keys: string[]): string | undefined {
  const parent = mapIn(node, ...keys.slice(0, -1));
  const v = scalarValue(parent?.get(keys.at(-1)!, true));
  return typeof v === 'string' ? v : undefined;
}
