/** Cheap facts about a string, counted once and shared by every detector's pre-check. */
export interface TextStats {
  digits: number;
  dots: number;
  at: boolean;
  colon: boolean;
  /** Whether a literal some detectors start with occurs (eyJ, Bearer, sk-, AKIA, ghp_, xox?-, -----BEGIN …): one scan for all of them. */
  prefixed: boolean;
}

const PREFIXES = /eyJ|earer|EARER|sk-|A(?:KIA|SIA|BIA|CCA|Iza)|gh[pousr]_|github_pat_|xox[abposre]-|-----BEGIN /;

/**
 * Fills `out` (reused between calls: protection is synchronous and never re-entered). Reads
 * characters by index, not charCodeAt: once any module defines a String subclass (ioredis
 * does, class VerbatimString extends String), V8 runs charCodeAt loops several times slower,
 * while indexing keeps its speed (npm run bench:micro:strings).
 */
export function textStats(text: string, out: TextStats): TextStats {
  let digits = 0;
  let dots = 0;
  let at = false;
  let colon = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c >= '0' && c <= '9') digits++;
    else if (c === '.') dots++;
    else if (c === '@') at = true;
    else if (c === ':') colon = true;
  }
  out.digits = digits;
  out.dots = dots;
  out.at = at;
  out.colon = colon;
  out.prefixed = text.length >= 8 && PREFIXES.test(text);
  return out;
}

export function emptyStats(): TextStats {
  return { digits: 0, dots: 0, at: false, colon: false, prefixed: false };
}

/** Reports one sensitive span [start, end) of the text, with the label its placeholder names. */
export type Emit = (start: number, end: number, label: string) => void;

/** A detector: a pre-check on stats and a scan that emits what it finds (precompiled, no state). */
export interface Detector {
  readonly name: string;
  wants(stats: TextStats): boolean;
  find(text: string, emit: Emit): void;
}

/** Runs a global regex over the text; `check` confirms a match (checksums) and may narrow it to a group. */
export function regexDetector(
  name: string,
  re: RegExp,
  wants: (s: TextStats) => boolean,
  check?: (m: RegExpExecArray) => boolean | [number, number],
  label: (m: RegExpExecArray) => string = () => name,
): Detector {
  return {
    name,
    wants,
    find(text, emit) {
      re.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(text)) !== null) {
        if (m[0] === '') {
          re.lastIndex++;
          continue;
        }
        const ok = check === undefined ? true : check(m);
        if (ok === true) emit(m.index, m.index + m[0].length, label(m));
        else if (ok !== false) emit(ok[0], ok[1], label(m));
      }
    },
  };
}

/** Runs the detector only on text containing its literal (after the shared `prefixed` pre-check). */
export function prefiltered(literal: string | RegExp, detector: Detector): Detector {
  const has = typeof literal === 'string' ? (t: string) => t.includes(literal) : (t: string) => literal.test(t);
  return {
    name: detector.name,
    wants: (s) => s.prefixed,
    find(text, emit) {
      if (has(text)) detector.find(text, emit);
    },
  };
}
