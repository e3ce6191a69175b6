import type { RuleSetConfig } from '../../config/index.ts';
import { cardDetector, ibanDetector, ssnDetector } from './numbers.ts';
import { bearerDetector, emailDetector, ipv4Detector, ipv6Detector, jwtDetector } from './patterns.ts';
import { phoneDetector } from './phone.ts';
import { pemDetector, tokenSecretsDetector } from './secrets.ts';
import { regexDetector, type Detector } from './types.ts';

export { isCardNumber, luhn } from './numbers.ts';
export { emptyStats, textStats, type Detector, type Emit, type TextStats } from './types.ts';

export type Action = 'redact' | 'hash' | 'encrypt' | 'drop';

/** The detectors a rule set turns on, each with its action, most specific first (they win ties). */
export function buildDetectors(rules: RuleSetConfig): Array<{ detector: Detector; action: Action }> {
  const d = rules.detectors;
  const out: Array<{ detector: Detector; action: Action }> = [];
  const add = (action: Action | 'off', ...detectors: Detector[]) => {
    if (action !== 'off') for (const detector of detectors) out.push({ detector, action });
  };
  add(d.secrets, pemDetector, tokenSecretsDetector);
  add(d.jwt, jwtDetector);
  add(d.bearer, bearerDetector);
  add(d.email, emailDetector);
  add(d.iban, ibanDetector);
  add(d.card, cardDetector);
  add(d.ssn, ssnDetector);
  add(d.phone, phoneDetector(rules.phoneCountries));
  add(d.ip, ipv4Detector, ipv6Detector);
  for (const c of rules.custom) add(c.action, customDetector(c.name, c.pattern, c.flags));
  return out;
}

/** A user-defined detector; the schema has already compiled and vetted the pattern. */
function customDetector(name: string, pattern: string, flags: string): Detector {
  return regexDetector(name, new RegExp(pattern, `${flags}g`), () => true);
}
