/** Cheap facts about a string, counted once and shared by every detector's pre-check. */
export interface TextStats {
  digits: number;
  dots: number;
  at: boolean;
  colon: boolean;
}

export function textStats(text: string): TextStats {
  let digits = 0;
  let dots = 0;
  let at = false;
  let colon = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if (c === 46) dots++;
    else if (c === 64) at = true;
    else if (c === 58) colon = true;
  }
  return { digits, dots, at, colon };
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

/** Runs the detector only on text containing a literal (a cheap indexOf or one simple regex test). */
export function prefiltered(literal: string | RegExp, detector: Detector): Detector {
  const has = typeof literal === 'string' ? (t: string) => t.includes(literal) : (t: string) => literal.test(t);
  return {
    name: detector.name,
    wants: detector.wants,
    find(text, emit) {
      if (has(text)) detector.find(text, emit);
    },
  };
}
