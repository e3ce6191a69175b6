import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { parseAddress, validateConfig } from '../src/config/index.ts';
import { resolveSettings, type InjectFlags, type InjectSettings } from '../src/inject/index.ts';

/** A file under test/fixtures/inject. */
export const fixture = (name: string): string => readFileSync(new URL(`./fixtures/inject/${name}`, import.meta.url), 'utf8');

/** Settings from flags, with an empty environment so that the test runner's cannot leak in. */
export const settingsFor = (flags: InjectFlags = {}): InjectSettings => resolveSettings(flags, {});

/** The sidecar's ports as the configuration schema's defaults give them. */
export function schemaPorts(): { ingress: number; egress: number; admin: number } {
  const defaults = validateConfig({});
  return {
    ingress: parseAddress(defaults.listen.address).port,
    egress: parseAddress(defaults.egress.address).port,
    admin: parseAddress(defaults.admin.address).port,
  };
}

export type Obj = Record<string, any>;

/** Every object of a YAML stream as plain data, List items included. */
export function objects(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .flatMap((o) => (o?.kind === 'List' ? (o.items as Obj[]) : o === null ? [] : [o]));
}

export function find(text: string, kind: string, name: string): Obj {
  const o = objects(text).find((x) => x.kind === kind && x.metadata?.name === name);
  if (o === undefined) throw new Error(`no ${kind}/${name} in the output`);
  return o;
}

/** The pod spec of a workload, wherever its kind keeps it. */
export function podSpec(o: Obj): Obj {
  if (o.kind === 'Pod') return o.spec;
  if (o.kind === 'CronJob') return o.spec.jobTemplate.spec.template.spec;
  return o.spec.template.spec;
}

export const container = (spec: Obj, name: string, list = 'containers'): Obj | undefined => (spec[list] as Obj[] | undefined)?.find((c) => c.name === name);

export const envOf = (c: Obj): Record<string, string | undefined> => Object.fromEntries(((c.env ?? []) as Obj[]).map((e) => [e.name, e.value]));

/** The documents of a stream as written, split at its `---` lines (the fixtures use them only as separators). */
export const chunks = (text: string): string[] => text.split(/^---\n/m);
