import { isAlias, isMap, isPair, isScalar, isSeq, Scalar, type Document, type Pair, YAMLMap, YAMLSeq } from 'yaml';
import { markRaw, rawNull } from './source.ts';
import { inputError, type Path, type Where } from './where.ts';

// Typed access to the yaml package's document tree: each accessor names the field when
// the input has the wrong shape, so that a bad manifest gets a precise error.

export type Doc = Document.Parsed | Document;

/** A scalar's value, or undefined for anything else. */
export function scalarValue(node: unknown): unknown {
  return isScalar(node) ? node.value : undefined;
}

/** The string (or number, as text) at `key`, or undefined. */
export function text(map: YAMLMap | undefined, key: string): string | undefined {
  const v = scalarValue(map?.get(key, true));
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

/** The mapping at `key`; undefined when absent or null; an error for anything else. */
export function mapAt(w: Where, parent: YAMLMap, key: string, path: Path): YAMLMap | undefined {
  const node = parent.get(key, true);
  if (node === undefined || node === null || (isScalar(node) && node.value === null)) return undefined;
  if (!isMap(node)) throw inputError('SIDECAR_INJECT_INVALID', w, [...path, key], 'expected a mapping');
  return node as YAMLMap;
}

/**
 * Like mapAt, for a mapping that is only read (labels, a selector): an alias (`*labels`) is
 * followed to the mapping its anchor names. Mappings that inject edits are never followed
 * through an alias, which would change every place that uses the anchor.
 */
export function readMapAt(doc: Doc, w: Where, parent: YAMLMap, key: string, path: Path): YAMLMap | undefined {
  const node = parent.get(key, true);
  if (isAlias(node)) {
    const target = node.resolve(doc as Document);
    if (isMap(target)) return target as YAMLMap;
    throw inputError('SIDECAR_INJECT_INVALID', w, [...path, key], 'expected a mapping');
  }
  return mapAt(w, parent, key, path);
}

/** The sequence at `key`; undefined when absent or null; an error for anything else. */
export function seqAt(w: Where, parent: YAMLMap, key: string, path: Path): YAMLSeq | undefined {
  const node = parent.get(key, true);
  if (node === undefined || node === null || (isScalar(node) && node.value === null)) return undefined;
  if (!isSeq(node)) throw inputError('SIDECAR_INJECT_INVALID', w, [...path, key], 'expected a list');
  return node as YAMLSeq;
}

/** Every item of a sequence must be a mapping (containers, ports, env entries, volumes). */
export function mapItems(w: Where, seq: YAMLSeq | undefined, path: Path): YAMLMap[] {
  return (seq?.items ?? []).map((item, i) => {
    if (!isMap(item)) throw inputError('SIDECAR_INJECT_INVALID', w, [...path, i], 'expected a mapping');
    return item as YAMLMap;
  });
}

/** Index of the item whose `name` is `name`. */
export function indexByName(seq: YAMLSeq | undefined, name: string): number {
  return (seq?.items ?? []).findIndex((item) => isMap(item) && text(item as YAMLMap, 'name') === name);
}

export function removeByName(seq: YAMLSeq | undefined, name: string): boolean {
  const i = indexByName(seq, name);
  if (i >= 0) seq!.items.splice(i, 1);
  return i >= 0;
}

/**
 * The collection at `key`, created when absent; `created` records it (by `label`) so that
 * uninject can remove what inject added and nothing else. Where the key was there with a
 * null value (`env:`, `env: ~`), `nulls` records its source text under `label`, for
 * uninject to write back.
 */
export function ensure<T extends YAMLMap | YAMLSeq>(
  doc: Doc,
  parent: YAMLMap,
  key: string,
  existing: T | undefined,
  make: 'map' | 'seq',
  created: string[],
  label: string,
  nulls?: Record<string, string>,
): T {
  if (existing !== undefined) return existing;
  const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key) as Pair | undefined;
  const raw = pair === undefined ? undefined : rawNull(doc, parent, pair);
  if (raw !== undefined && nulls !== undefined) nulls[label] = raw;
  const node = doc.createNode(make === 'map' ? {} : []) as T;
  parent.set(key, node);
  created.push(label);
  return node;
}

/**
 * Removes `key` when its collection is empty (what inject created, once emptied again), or,
 * when it had replaced a null (`raw`, recorded by ensure), puts that null back as it was.
 */
export function dropIfEmpty(parent: YAMLMap | undefined, key: string, raw?: string): void {
  const node = parent?.get(key, true);
  if (!((isMap(node) || isSeq(node)) && node.items.length === 0)) return;
  if (raw === undefined) {
    parent!.delete(key);
    return;
  }
  const empty = new Scalar(null);
  markRaw(empty, raw);
  parent!.set(key, empty);
}

/** metadata.annotations[key] of an object or pod template, as text. */
export function annotationOf(owner: YAMLMap, key: string): string | undefined {
  const meta = owner.get('metadata', true);
  const ann = isMap(meta) ? meta.get('annotations', true) : undefined;
  return isMap(ann) ? text(ann as YAMLMap, key) : undefined;
}

/** Every string value of a mapping of strings (labels, annotations, selectors). */
export function stringMap(map: YAMLMap | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of map?.items ?? []) {
    const k = scalarValue(pair.key);
    const v = scalarValue(pair.value);
    if (typeof k === 'string' && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) out.set(k, String(v));
  }
  return out;
}
