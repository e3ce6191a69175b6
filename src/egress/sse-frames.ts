const LF = 0x0a;
const CR = 0x0d;
/** The longest unfinished event held back (chat chunks are a few KiB); past it bytes pass unchanged. */
export const MAX_HELD_BYTES = 64 * 1024;

/**
 * Splits raw server-sent-event bytes into whole events (each up to and including the blank
 * line that ends it; CRLF, LF and CR line ends alike), holding back an unfinished event until
 * its end arrives. Only used where the sidecar must drop an event it caused (the usage chunk
 * of an include_usage it added): everywhere else bytes pass on as they arrive.
 */
export class SseFrames {
  #pending: Buffer | undefined;
  /** In #pending: how far it was scanned, and where its unfinished line starts. */
  #scanned = 0;
  #lineStart = 0;
  /** Set once an event grew past MAX_HELD_BYTES: from then on bytes pass as they come. */
  #passthrough = false;

  /** The whole events that `chunk` completes, in order (or, past the cap, the bytes as they are). */
  push(chunk: Buffer): Buffer[] {
    if (this.#passthrough) return [chunk];
    const buf = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: Buffer[] = [];
    let start = 0;
    let lineStart = this.#pending === undefined ? 0 : this.#lineStart;
    let i = this.#pending === undefined ? 0 : this.#scanned;
    for (; i < buf.length; i++) {
      const c = buf[i];
      if (c !== LF && c !== CR) continue;
      // A CR at the very end may be the first half of a CRLF: wait for the next byte.
      if (c === CR && i === buf.length - 1) break;
      const end = c === CR && buf[i + 1] === LF ? i + 2 : i + 1;
      if (i === lineStart) {
        frames.push(buf.subarray(start, end));
        start = end;
      }
      lineStart = end;
      i = end - 1;
    }
    this.#pending = start < buf.length ? buf.subarray(start) : undefined;
    this.#scanned = Math.min(i, buf.length) - start;
    this.#lineStart = lineStart - start;
    if (this.#pending !== undefined && this.#pending.length > MAX_HELD_BYTES) {
      // Not a stream of events this sidecar can hold back (no blank line in sight): give up
      // holding, and let everything through unchanged rather than buffer without limit.
      frames.push(this.#pending);
      this.#pending = undefined;
      this.#passthrough = true;
    }
    return frames;
  }

  /** Whether holding was given up (an event grew past the cap). */
  get passthrough(): boolean {
    return this.#passthrough;
  }

  /** What is left: an event the stream never finished. */
  rest(): Buffer | undefined {
    const rest = this.#pending;
    this.#pending = undefined;
    return rest;
  }
}
