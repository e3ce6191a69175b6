import { findNumbers, type CountryCode } from 'libphonenumber-js/max';
import { regexDetector, type Detector } from './types.ts';

// Candidates: 7-15 digits with the separators people write (+, spaces, dashes, dots, parentheses).
// Validity is libphonenumber's (full metadata: real number ranges per country, dates and times
// excluded); the candidate rules only keep that (slower) check off most strings and add one rule
// of our own: a bare run of digits without + is an id, an amount or a timestamp far more often
// than a phone number (the complaint users of other gateways have: 10-digit ids taken for phones).
const CANDIDATE = /(?<![\w.+/-])(?:\+|\(\+?)?\d[\d ().\-/\u00a0]{5,22}\d(?![\w]|[.-]\d)/g;
const DATE_LIKE = /^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{4}/;

// libphonenumber's parse costs far more than the scan around it: verdicts are kept per
// candidate text, since the same numbers come back in every turn of a conversation (chat
// requests resend the history).
const MAX_VERDICTS = 4096;

export function phoneDetector(countries: readonly string[]): Detector {
  const regions = countries as readonly CountryCode[];
  const verdicts = new Map<string, readonly [number, number] | false>();
  const verify = (text: string, digits: number): readonly [number, number] | false => {
    const international = text.startsWith('+') || text.startsWith('(+');
    for (const defaultCountry of international ? regions.slice(0, 1) : regions) {
      // The number must be the whole candidate: 415-555-2671-99 is not a phone followed by 99.
      for (const f of findNumbers(text, { defaultCountry, v2: true })) {
        if (countDigits(text, f.startsAt, f.endsAt) === digits) return [f.startsAt, f.endsAt];
      }
    }
    return false;
  };
  return regexDetector(
    'phone',
    CANDIDATE,
    (s) => s.digits >= 7,
    (m) => {
      const text = m[0];
      const digits = countDigits(text, 0, text.length);
      const separated = digits < text.length;
      if (digits < 7 || digits > 15 || !separated || DATE_LIKE.test(text)) return false;
      let verdict = verdicts.get(text);
      if (verdict === undefined) {
        verdict = verify(text, digits);
        if (verdicts.size >= MAX_VERDICTS) verdicts.clear();
        verdicts.set(text, verdict);
      }
      if (verdict !== false) return [m.index + verdict[0], m.index + verdict[1]];
      return false;
    },
  );
}

function countDigits(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text[i]!;
    if (c >= '0' && c <= '9') n++;
  }
  return n;
}
