import { afterAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/index.ts';
import { createProtector, isCardNumber, luhn } from '../src/protect/index.ts';
import { NEGATIVES, POSITIVES } from './protect-corpus.ts';

// Every built-in detector on, including the optional IP detector.
const rules = validateConfig({ protection: { rules: { default: { detectors: { ip: 'redact' }, phoneCountries: ['US', 'GB'] } } } }).protection.rules.default!;
const p = createProtector(rules, { ring: () => undefined, hashKey: undefined });

const stats = { tp: 0, fn: 0, fp: 0, tn: 0 };
afterAll(() => {
  const precision = stats.tp / (stats.tp + stats.fp);
  const recall = stats.tp / (stats.tp + stats.fn);
  process.stdout.write(
    `detector corpus: ${POSITIVES.length} positives, ${NEGATIVES.length} negatives; precision ${(precision * 100).toFixed(1)}%, recall ${(recall * 100).toFixed(1)}%\n`,
  );
});

describe('detectors', () => {
  it.each(POSITIVES)('protects %s: %s', (label, value) => {
    const out = p.text(`before ${value} after`);
    const hit = out === `before [REDACTED:${label}] after`;
    if (label === 'bearer') {
      expect(p.text(`Authorization: Bearer ${value}`)).toBe('Authorization: Bearer [REDACTED:bearer]');
      stats.tp++;
      return;
    }
    if (hit) stats.tp++;
    else stats.fn++;
    expect(out).toBe(`before [REDACTED:${label}] after`);
  });

  it.each(NEGATIVES.map((v) => [v]))('leaves %j alone', (value) => {
    const out = p.text(`x ${value} y`);
    if (out === `x ${value} y`) stats.tn++;
    else stats.fp++;
    expect(out).toBe(`x ${value} y`);
  });

  it('finds several values in one text and replaces each once', () => {
    expect(p.text('mail bob@example.com or call +1 415 555 2671, card 4111111111111111.')).toBe(
      'mail [REDACTED:email] or call [REDACTED:phone], card [REDACTED:card].',
    );
  });

  it('starts an address at its first letter or digit, inside punctuation', () => {
    expect(p.text('bot/1.0 (+ops+alerts@example.com; <bob@example.com>)')).toBe('bot/1.0 (+[REDACTED:email]; <[REDACTED:email]>)');
  });

  it('redacts an unterminated PEM private key to the end of the text', () => {
    expect(p.text('key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC')).toBe('key: [REDACTED:private_key]');
  });

  it('checks payment cards with Luhn and the card networks', () => {
    expect(luhn('79927398713')).toBe(true);
    expect(luhn('79927398710')).toBe(false);
    expect(isCardNumber('4111111111111111')).toBe(true);
    expect(isCardNumber('1234567812345670')).toBe(false);
    // A card number sent as a JSON number is found too.
    expect(p.json('{"n":4111111111111111,"id":1700000000123}')).toBe('{"n":"[REDACTED:card]","id":1700000000123}');
  });

  it('turns detectors off one by one', () => {
    const off = validateConfig({ protection: { rules: { default: { detectors: { email: 'off' } } } } }).protection.rules.default!;
    const q = createProtector(off, { ring: () => undefined, hashKey: undefined });
    expect(q.text('bob@example.com 4111111111111111')).toBe('bob@example.com [REDACTED:card]');
  });
});
