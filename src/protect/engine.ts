import type { Attributes, AttributeValue } from '@opentelemetry/api';
import type { RuleSetConfig } from '../config/index.ts';
import { createActions, DROP, type ActionKeys } from './actions.ts';
import { buildDetectors } from './detect/index.ts';
import { compileFieldRules, type FieldRule } from './fields.ts';
import { createTextProtector, type FindingObserver } from './scan.ts';
import { createValueProtector } from './walk.ts';

/** One rule set, compiled: small functions to call per value. */
export interface Protector {
  /** Free text with the detectors; the same string when nothing was found. */
  text(value: string): string;
  /** A JSON value (or a log record object) with field rules and detectors; copy on write. */
  value(value: unknown): unknown;
  /** JSON text; the same string when nothing changed, undefined when it is not valid JSON. */
  json(text: string): string | undefined;
  /**
   * Flat telemetry attributes (span, log record, data point); the same object when nothing
   * changed. `generated` names keys whose values the sidecar made in a fixed format (trace and
   * span ids in hex): field rules apply to them, detectors do not, so that a span id that
   * happens to be 16 digits passing Luhn is never taken for a card number.
   */
  attributes(attrs: Attributes, generated?: ReadonlySet<string>): Attributes;
  /** One attribute, as attributes() would treat it: the same value when nothing changed, undefined when a field rule drops it. */
  attribute(key: string, value: AttributeValue): AttributeValue | undefined;
  /**
   * Short text that recurs (span names, log messages): text() with clean verdicts
   * remembered, as attribute values are.
   */
  recurring(value: string): string;
}

/** Strings up to this length that held nothing to protect are remembered, this many at most. */
const CLEAN_MAX_LENGTH = 256;
const CLEAN_MAX_ENTRIES = 4096;
/**
 * A random UUID (version 4), the shape of the request ids the sidecar makes: hex digits and
 * dashes can hold no e-mail, card number (its longest run of digits is 12), key or token the
 * built-in detectors know, so such a value is passed without a scan unless the rule set has
 * custom patterns. It is a one-off per request, which the clean-value memory cannot help.
 */
const RANDOM_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export interface ProtectorOptions extends ActionKeys {
  /** Called for each protected value with its label (the redact CLI counts them). */
  observe?: FindingObserver;
}

/**
 * Compiles a rule set once: detectors with their regexes, field paths, actions bound to the
 * keys. Nothing is parsed or compiled per call.
 *
 * @example
 * const p = createProtector(config.protection.rules.default!, { ring: () => ring, hashKey: undefined });
 * p.text('mail bob@example.com'); // 'mail [REDACTED:email]'
 */
export function createProtector(rules: RuleSetConfig, options: ProtectorOptions): Protector {
  const actions = createActions(options);
  const text = createTextProtector(buildDetectors(rules), actions, options.observe);
  const fields = compileFieldRules(rules.fields);
  const values = createValueProtector(fields, actions, text, options.observe);

  // Telemetry repeats itself: the same attribute keys on every record, and mostly the same
  // values (methods, routes, addresses, user agents, paths). Rules are looked up once per key,
  // and a value found clean is not scanned again while it is remembered. Only clean verdicts
  // are kept: what has a finding is protected afresh each time (an envelope is never reused,
  // and every finding is observed).
  const flatRules = new Map<string, FieldRule | null>();
  const ruleOf = (key: string): FieldRule | undefined => {
    let r = flatRules.get(key);
    if (r === undefined) {
      if (flatRules.size >= CLEAN_MAX_ENTRIES) flatRules.clear();
      flatRules.set(key, (r = fields.flat(key) ?? null));
    }
    return r ?? undefined;
  };
  // Two generations: a value is looked up in both, and one found in the older is carried
  // into the younger; when the younger is full, the older is let go. Values that recur stay,
  // one-off ones (request and trace ids) pass through, and nothing costs more than a lookup.
  let young = new Set<string>();
  let old = new Set<string>();
  const remember = (value: string) => {
    if (young.size >= CLEAN_MAX_ENTRIES / 2) {
      old = young;
      young = new Set();
    }
    young.add(value);
  };
  const skipsUuids = rules.custom.length === 0;
  function recurring(value: string): string {
    if (value.length > CLEAN_MAX_LENGTH) return text(value);
    if (value.length === 36 && skipsUuids && RANDOM_UUID.test(value)) return value;
    if (young.has(value)) return value;
    if (old.has(value)) {
      remember(value);
      return value;
    }
    const out = text(value);
    if (out === value) remember(value);
    return out;
  }

  function attribute(key: string, value: AttributeValue | undefined, generated: ReadonlySet<string> | undefined): AttributeValue | undefined | typeof DROP {
    const rule = ruleOf(key);
    if (rule !== undefined) {
      options.observe?.(rule.label, rule.action);
      return actions.field(rule.action, value, rule.label) as AttributeValue | typeof DROP;
    }
    if (generated?.has(key)) return value;
    if (typeof value === 'string') return recurring(value);
    if (Array.isArray(value)) {
      let out: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const v = value[i];
        const w = typeof v === 'string' ? recurring(v) : v;
        if (w !== v) (out ??= value.slice())[i] = w;
      }
      return (out as AttributeValue | undefined) ?? value;
    }
    return value;
  }

  return {
    text,
    recurring,
    value: values.value,
    json: values.json,
    attribute(key, value) {
      const w = attribute(key, value, undefined);
      return w === DROP ? undefined : w;
    },
    attributes(attrs, generated) {
      let out: Attributes | undefined;
      for (const key in attrs) {
        const v = attrs[key];
        const w = attribute(key, v, generated);
        if (w === v) continue;
        out ??= { ...attrs };
        if (w === DROP) delete out[key];
        else out[key] = w;
      }
      return out ?? attrs;
    },
  };
}
