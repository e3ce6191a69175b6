import { SseSplitter } from '../protect/index.ts';

/** The longest unfinished event held back (chat chunks are a few KiB); past it bytes pass unchanged. */
export const MAX_HELD_BYTES = 64 * 1024;

/**
 * Whole server-sent events (each up to and including the blank line that ends it), an
 * unfinished one held back until its end arrives. Only used where the sidecar must drop an
 * event it caused (the usage chunk of an include_usage it added): everywhere else bytes pass
 * on as they arrive.
 */
export class SseFrames {
  readonly #split = new SseSplitter();
  /** Set once an event grew past MAX_HELD_BYTES: from then on bytes pass as they come. */
  #passthrough = false;

  /** The whole events that `chunk` completes, in order (or, past the cap, the bytes as they are). */
  push(chunk: Buffer): Buffer[] {
    if (this.#passthrough) return [chunk];
    const s = this.#split;
    const frames: Buffer[] = [];
    s.push(chunk);
    while (s.next()) frames.push(s.buffer.subarray(s.start, s.end));
    if (s.held > MAX_HELD_BYTES) {
      // Not a stream of events this sidecar can hold back (no blank line in sight): give up
      // holding, and let everything through unchanged rather than buffer without limit.
      frames.push(s.take()!);
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
    return this.#split.take();
  }
}
