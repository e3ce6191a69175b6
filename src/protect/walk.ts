import { DROP, type Actions } from './actions.ts';
import type { FieldMatcher, FieldRule, FieldState } from './fields.ts';
import { normalizeKey } from './fields.ts';
import type { FindingObserver } from './scan.ts';

// ES2025 JSON.parse source text access (Node >= 21): numbers beyond double precision keep their digits.
interface JsonWithRaw {
  rawJSON(text: string): unknown;
  isRawJSON(value: unknown): boolean;
}
const RawJSON = JSON as unknown as JsonWithRaw;
const MAX_DEPTH = 256;
const TOO_DEEP = '[REDACTED:too_deep]';

export interface ValueProtector {
  /** A parsed JSON value (or a log record) protected: a copy where anything changed, else the value itself. */
  value(value: unknown): unknown;
  /** JSON text protected; the same string when nothing changed, undefined when it is not JSON. */
  json(text: string): string | undefined;
}

/**
 * Walks JSON values with the field rules and the text protector. Copy on write: objects and
 * arrays are copied only on the path to a change, so an untouched document is returned as is.
 * Integers of 13 digits and more are checked as text too (a card number sent as a JSON number).
 * Deeper than 256 levels is replaced whole, never passed unread.
 */
export function createValueProtector(fields: FieldMatcher, actions: Actions, text: (s: string) => string, observe?: FindingObserver): ValueProtector {
  // Set when a walk met an integer beyond 2^53, whose digits JSON.parse has already rounded.
  let unsafe = false;
  function walk(v: unknown, state: FieldState, depth: number): unknown {
    if (typeof v === 'string') return text(v);
    if (typeof v !== 'object' || v === null) {
      if (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) < 1e12) return v;
      if (!Number.isSafeInteger(v)) unsafe = true;
      return number(v, String(v));
    }
    if (depth > MAX_DEPTH) return TOO_DEEP;
    if (Array.isArray(v)) {
      let out: unknown[] | undefined;
      for (let i = 0; i < v.length; i++) {
        const w = walk(v[i], state, depth + 1);
        if (w !== v[i]) (out ??= v.slice())[i] = w;
      }
      return out ?? v;
    }
    if (RawJSON.isRawJSON(v)) {
      const source = (v as { rawJSON: string }).rawJSON;
      return /^-?\d+$/.test(source) ? number(v, source) : v;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      // Not from JSON.parse (a log call's URL, Date or class instance): protect what
      // JSON.stringify would write. Errors are left to the log serializer, which protects them.
      if (v instanceof Error) return v;
      const toJSON = (v as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        const json: unknown = toJSON.call(v);
        const w = walk(json, state, depth + 1);
        return w === json ? v : w;
      }
    }
    const obj = v as Record<string, unknown>;
    const keys = Object.keys(obj);
    let out: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const child = obj[key];
      let rule: FieldRule | undefined;
      let next = state;
      // Without anchored paths there is no state to carry: one map lookup per key.
      if (fields.anchored) ({ rule, next } = fields.step(state, normalizeKey(key)));
      else rule = fields.named(normalizeKey(key));
      let w: unknown;
      if (rule !== undefined) {
        w = actions.field(rule.action, child, rule.label);
        observe?.(rule.label, rule.action);
      } else {
        w = walk(child, next, depth + 1);
      }
      if (w === child && out === undefined) continue;
      if (out === undefined) {
        out = {};
        for (let j = 0; j < i; j++) set(out, keys[j]!, obj[keys[j]!]);
      }
      if (w !== DROP) set(out, key, w);
    }
    return out ?? v;
  }

  function number(original: unknown, digits: string): unknown {
    const protectedText = text(digits);
    return protectedText === digits ? original : protectedText;
  }

  return {
    value: (v) => walk(v, fields.root, 0),
    json(source) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(source);
      } catch {
        return undefined;
      }
      unsafe = false;
      let out = walk(parsed, fields.root, 0);
      // Unchanged: the source goes on as it came. Changed with a long integer in it: parse
      // again keeping its digits (the slower reviver runs only then).
      if (out === parsed) return source;
      if (unsafe) out = walk(JSON.parse(source, keepLongNumbers), fields.root, 0);
      return JSON.stringify(out);
    },
  };
}

function keepLongNumbers(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === 'number' && context?.source !== undefined && String(value) !== context.source) return RawJSON.rawJSON(context.source);
  return value;
}

/** `__proto__` from JSON.parse is an own key, and must stay one in the copy. */
function set(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}
