const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits raw server-sent-event bytes into whole events (each up to and including the blank
 * line that ends it; CRLF, LF and CR line ends alike), holding back an unfinished event until
 * its end arrives. Only used where the sidecar must drop an event it caused (the usage chunk
 * of an include_usage it added): everywhere else bytes pass on as they arrive.
 */
export class SseFrames {
  #pending: Buffer | undefined;

  /** The whole events that `chunk` completes, in order. */
  push(chunk: Buffer): Buffer[] {
    const buf = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: Buffer[] = [];
    let start = 0;
    let lineStart = 0;
    for (let i = 0; i < buf.length; i++) {
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
    return frames;
  }

  /** What is left: an event the stream never finished. */
  rest(): Buffer | undefined {
    const rest = this.#pending;
    this.#pending = undefined;
    return rest;
  }
}
