import { createHmac } from 'node:crypto';
import type { Action } from './detect/index.ts';
import type { KeyRing } from './keyring.ts';

/** What the actions need: the key ring (read per call, so a reload takes effect) and the HMAC key. */
export interface ActionKeys {
  ring: () => KeyRing | undefined;
  hashKey: Buffer | undefined;
}

/** A field rule's `drop`: the key disappears from its object. */
export const DROP: unique symbol = Symbol('drop');

export interface Actions {
  /** A sensitive substring of a text, replaced. */
  text(action: Action, value: string, label: string): string;
  /** A whole JSON value under a field rule, replaced (or DROP). */
  field(action: Action, value: unknown, label: string): unknown;
}

/**
 * redact: `[REDACTED:label]`; hash: `[HASH:label:<128-bit HMAC-SHA-256, base64url>]`, equal
 * values hash alike so records still correlate; encrypt: an `enc:v1:` envelope; drop: removed.
 */
export function createActions(keys: ActionKeys): Actions {
  const { hashKey } = keys;
  const hash = (text: string) => {
    if (hashKey === undefined) throw new Error('the hash action needs protection.hashKey (the schema requires it)');
    return createHmac('sha256', hashKey).update(text).digest().subarray(0, 16).toString('base64url');
  };
  const ring = () => {
    const r = keys.ring();
    if (r === undefined) throw new Error('the encrypt action needs protection.keys (the schema requires them)');
    return r;
  };
  return {
    text(action, value, label) {
      switch (action) {
        case 'redact':
          return `[REDACTED:${label}]`;
        case 'hash':
          return `[HASH:${label}:${hash(value)}]`;
        case 'encrypt':
          return ring().encrypt('t', value);
        case 'drop':
          return '';
      }
    },
    field(action, value, label) {
      switch (action) {
        case 'redact':
          return `[REDACTED:${label}]`;
        case 'hash':
          return `[HASH:${label}:${hash(typeof value === 'string' ? value : JSON.stringify(value))}]`;
        case 'encrypt':
          return typeof value === 'string' ? ring().encrypt('t', value) : ring().encrypt('j', JSON.stringify(value));
        case 'drop':
          return DROP;
      }
    },
  };
}
