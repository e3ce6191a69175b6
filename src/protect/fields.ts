import type { Action } from './detect/index.ts';

export interface FieldRule {
  readonly action: Action;
  /** The placeholder label: the last named segment of the path as written. */
  readonly label: string;
}

/** Where a walk stands in the anchored paths: encoded (rule index << 8 | segment position), or empty. */
export type FieldState = readonly number[];

export interface FieldMatcher {
  readonly root: FieldState;
  /** Whether any rule is anchored (otherwise states are always empty and cost nothing). */
  readonly anchored: boolean;
  /** The rule for the value under `key` (normalized) reached from `state`, and the state below it. */
  step(state: FieldState, key: string): { rule: FieldRule | undefined; next: FieldState };
  /** The rule of a bare key name (normalized), for walks with no anchored path. */
  named(key: string): FieldRule | undefined;
  /** A rule for a flat dotted key (telemetry attributes: http.request.header.authorization). */
  flat(key: string): FieldRule | undefined;
}

const EMPTY: FieldState = Object.freeze([]);
const NORMALIZED = new Map<string, string>();

/** apiKey, api_key, API-KEY and api-key are one key name: lower case, without _ and -. */
export function normalizeKey(key: string): string {
  let n = NORMALIZED.get(key);
  if (n === undefined) {
    n = key.toLowerCase().replace(/[_-]/g, '');
    if (NORMALIZED.size > 10_000) NORMALIZED.clear();
    NORMALIZED.set(key, n);
  }
  return n;
}

/**
 * Compiles field rules: a bare name matches that key at any depth; a dotted path is anchored
 * at the root, `*` one level, `**` any number; arrays are transparent (a path names keys, not indices).
 */
export function compileFieldRules(rules: ReadonlyArray<{ path: string; action: Action }>): FieldMatcher {
  const anywhere = new Map<string, FieldRule>();
  const paths: Array<{ segs: string[]; rule: FieldRule }> = [];
  for (const { path, action } of rules) {
    const segs = path.split('.');
    const label = [...segs].reverse().find((s) => s !== '*' && s !== '**') ?? 'field';
    const rule: FieldRule = Object.freeze({ action, label });
    if (segs.length === 1 && segs[0] !== '*' && segs[0] !== '**') {
      if (!anywhere.has(normalizeKey(path))) anywhere.set(normalizeKey(path), rule);
    } else {
      paths.push({ segs: segs.map((s) => (s === '*' || s === '**' ? s : normalizeKey(s))), rule });
    }
  }
  const root: FieldState = Object.freeze(paths.map((_, i) => i << 8));

  function step(state: FieldState, key: string): { rule: FieldRule | undefined; next: FieldState } {
    let rule: FieldRule | undefined;
    let next: number[] | undefined;
    const push = (code: number) => {
      next ??= [];
      if (!next.includes(code)) next.push(code);
    };
    const advance = (r: number, p: number) => {
      const { segs } = paths[r]!;
      if (p >= segs.length) return;
      const seg = segs[p]!;
      if (seg === '**') {
        if (p + 1 === segs.length) rule ??= paths[r]!.rule;
        push((r << 8) | p);
        advance(r, p + 1);
      } else if (seg === '*' || seg === key) {
        if (p + 1 === segs.length) rule ??= paths[r]!.rule;
        else push((r << 8) | (p + 1));
      }
    };
    for (const code of state) advance(code >> 8, code & 0xff);
    return { rule: rule ?? anywhere.get(key), next: next ?? EMPTY };
  }

  return {
    root: paths.length > 0 ? root : EMPTY,
    anchored: paths.length > 0,
    step,
    named: (key) => anywhere.get(key),
    flat(key) {
      if (paths.length > 0) {
        let state: FieldState = root;
        const parts = key.split('.');
        for (let i = 0; i < parts.length; i++) {
          const { rule, next } = step(state, normalizeKey(parts[i]!));
          if (rule !== undefined && i === parts.length - 1) return rule;
          state = next;
        }
      }
      const dot = key.lastIndexOf('.');
      return anywhere.get(normalizeKey(key)) ?? (dot === -1 ? undefined : anywhere.get(normalizeKey(key.slice(dot + 1))));
    },
  };
}
