import type { Actions } from './actions.ts';
import { emptyStats, textStats, type Action, type Detector } from './detect/index.ts';

interface Finding {
  start: number;
  end: number;
  label: string;
  /** Index of the detector: the lower wins a tie. */
  rank: number;
}

/** Counts what was protected, by label (the redact CLI's --stats). */
export type FindingObserver = (label: string, action: Action) => void;

/**
 * The text protector of a rule set: every detector whose pre-check passes scans the original
 * text, overlapping findings are resolved (earliest, then longest, then the more specific
 * detector), and each kept span is replaced once. Detectors never see replacements, so a hash
 * or an envelope can never be taken for a phone number. Returns the same string when nothing
 * was found (no allocation on the common path).
 */
export function createTextProtector(
  detectors: ReadonlyArray<{ detector: Detector; action: Action }>,
  actions: Actions,
  observe?: FindingObserver,
): (text: string) => string {
  // Reused between calls: protection is synchronous and never re-entered.
  const findings: Finding[] = [];
  const scratch = emptyStats();
  let rank = 0;
  const emit = (start: number, end: number, label: string) => {
    if (end > start) findings.push({ start, end, label, rank });
  };

  return function protectText(text: string): string {
    if (text.length === 0 || detectors.length === 0) return text;
    const stats = textStats(text, scratch);
    findings.length = 0;
    for (rank = 0; rank < detectors.length; rank++) {
      const { detector } = detectors[rank]!;
      if (detector.wants(stats)) detector.find(text, emit);
    }
    if (findings.length === 0) return text;
    if (findings.length > 1) findings.sort((a, b) => a.start - b.start || b.end - a.end || a.rank - b.rank);
    let out = '';
    let pos = 0;
    for (const f of findings) {
      if (f.start < pos) continue;
      const { action } = detectors[f.rank]!;
      out += text.slice(pos, f.start) + actions.text(action, text.slice(f.start, f.end), f.label);
      observe?.(f.label, action);
      pos = f.end;
    }
    return out + text.slice(pos);
  };
}
