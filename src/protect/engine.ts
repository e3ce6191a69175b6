import type { Attributes, AttributeValue } from '@opentelemetry/api';
import type { RuleSetConfig } from '../config/schema.ts';
import { createActions, DROP, type ActionKeys } from './actions.ts';
import { buildDetectors } from './detect/index.ts';
import { compileFieldRules } from './fields.ts';
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
  /** Flat telemetry attributes (span, log record, data point); the same object when nothing changed. */
  attributes(attrs: Attributes): Attributes;
}

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

  function attribute(key: string, value: AttributeValue | undefined): AttributeValue | undefined | typeof DROP {
    const rule = fields.flat(key);
    if (rule !== undefined) {
      options.observe?.(rule.label, rule.action);
      return actions.field(rule.action, value, rule.label) as AttributeValue | typeof DROP;
    }
    if (typeof value === 'string') return text(value);
    if (Array.isArray(value)) {
      let out: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const v = value[i];
        const w = typeof v === 'string' ? text(v) : v;
        if (w !== v) (out ??= value.slice())[i] = w;
      }
      return (out as AttributeValue | undefined) ?? value;
    }
    return value;
  }

  return {
    text,
    value: values.value,
    json: values.json,
    attributes(attrs) {
      let out: Attributes | undefined;
      for (const key in attrs) {
        const v = attrs[key];
        const w = attribute(key, v);
        if (w === v) continue;
        out ??= { ...attrs };
        if (w === DROP) delete out[key];
        else out[key] = w;
      }
      return out ?? attrs;
    },
  };
}
