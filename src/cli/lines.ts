import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { SidecarError } from '../errors/index.ts';

/**
 * Line-oriented filters (redact, decrypt): each input line is handled as it arrives and its
 * result written at once, with backpressure. A line that cannot be handled is reported on
 * stderr with its number (never its content, which may be what must not leak) and left out;
 * the others go on. At the end, any such line makes the command fail with SIDECAR_INPUT_INVALID.
 */
export async function filterLines(
  handle: (line: string, n: number, report: (problem: string, code: string) => void) => string | undefined,
  input: NodeJS.ReadableStream = process.stdin,
): Promise<{ lines: number }> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  let bad = 0;
  let reported = 0;
  // A problem inside a line that was still written (a value left as it was).
  const report = (problem: string, code: string) => {
    reported++;
    process.stderr.write(`line ${n}: ${problem} [${code}]\n`);
  };
  for await (const line of rl) {
    n++;
    let out: string | undefined;
    try {
      out = handle(line, n, report);
    } catch (err) {
      bad++;
      const code = err instanceof SidecarError ? err.code : 'SIDECAR_INPUT_INVALID';
      process.stderr.write(`line ${n}: ${(err as Error).message}; left out [${code}]\n`);
      continue;
    }
    if (out !== undefined && !process.stdout.write(`${out}\n`)) await once(process.stdout, 'drain');
  }
  if (bad > 0 || reported > 0) {
    throw new SidecarError('SIDECAR_INPUT_INVALID', {
      message: `${bad} of ${count(n, 'input line')} ${bad === 1 ? 'was' : 'were'} left out and ${count(reported, 'problem')} ${reported === 1 ? 'was' : 'were'} reported in written lines (see above); the other lines were written`,
    });
  }
  return { lines: n };
}

/** `1 problem`, `2 problems`. */
export const count = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export function inputError(message: string): SidecarError {
  return new SidecarError('SIDECAR_INPUT_INVALID', { message });
}
