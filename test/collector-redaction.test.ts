/**
 * The collector's redaction processor blocks the same values as the sidecar's own data
 * protection, as far as regular expressions can: on the detector corpus, every value the
 * sidecar protects that a regular expression can tell is masked by some blocked_values
 * expression, and the look-alikes the sidecar leaves alone are left alone by the collector
 * too. (The full-stack test runs the real collector on planted values.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateConfig } from '../src/config/index.ts';
import { createProtector } from '../src/protect/index.ts';
import { REPO } from './metric-names.ts';
import { NEGATIVES, POSITIVES } from './protect-corpus.ts';

const collector = parse(readFileSync(join(REPO, 'collector', 'otelcol.yaml'), 'utf8')) as { processors: { redaction: { blocked_values: string[] } } };
// The collector's RE2 expressions; `$$` is the configuration's escape for `$`. Everything
// they use means the same in JavaScript.
const blocked = collector.processors.redaction.blocked_values.map((s) => new RegExp(s.replaceAll('$$', '$'), 'g'));
const sidecar = createProtector(validateConfig({}).protection.rules.default!, { ring: () => undefined, hashKey: undefined });

/** The text as the collector's redaction processor leaves it: every match masked. */
function collectorMasks(text: string): string {
  return blocked.reduce((t, re) => t.replace(re, '****'), text);
}

/** What only a checksum or a validity check can tell, so only the sidecar protects it. */
const NEEDS_A_CHECK = ['card', 'iban', 'phone'];
/** Off by default in the sidecar too (addresses are often wanted in logs). */
const OFF_BY_DEFAULT = ['ip'];

describe("the collector's redaction and the sidecar's detectors", () => {
  const covered = POSITIVES.filter(([label]) => !NEEDS_A_CHECK.includes(label) && !OFF_BY_DEFAULT.includes(label));

  it.each(covered)('the collector masks what the sidecar protects as %s: %s', (label, value) => {
    const text = label === 'bearer' ? `Authorization: Bearer ${value}` : `before ${value} after`;
    expect(sidecar.text(text)).not.toBe(text);
    const masked = collectorMasks(text);
    expect(masked).not.toContain(value);
    expect(masked).toContain('****');
  });

  it('leaves the look-alikes alone that the sidecar leaves alone, but image names after an @', () => {
    const masked = NEGATIVES.filter((v) => collectorMasks(`x ${v} y`) !== `x ${v} y`);
    // RE2 has no look-ahead: icon@2x.png reads as an address (the sidecar knows image extensions).
    expect(masked).toEqual(['icon@2x.png']);
  });

  it("leaves alone the ids in the sidecar's own records", () => {
    const ids = [
      '4bf92f3577b34da6a3ce929d0e0e4736',
      '00f067aa0ba902b7',
      '6f1c0d8e-2b6a-4c1e-9d3f-8a7b6c5d4e3f',
      'e2emwwbj8kr-outage-12',
      '2026-11-25T15:37:43.202Z',
    ];
    for (const id of ids) expect(collectorMasks(id)).toBe(id);
  });

  it('covers every detector the sidecar has, but those that need a check', () => {
    const labels = new Set(POSITIVES.map(([label]) => label));
    expect([...labels].filter((l) => !covered.some(([c]) => c === l)).sort()).toEqual([...NEEDS_A_CHECK, ...OFF_BY_DEFAULT].sort());
  });
});
