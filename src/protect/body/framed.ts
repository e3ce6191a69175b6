import type { BodyTransform } from '../../core/index.ts';
import type { SidecarError } from '../../errors/index.ts';

const EMPTY = Buffer.alloc(0);

/**
 * Splits a stream into frames (an SSE event, an NDJSON line). push() a chunk, then next() until
 * it returns false: each true sets buffer[start, contentEnd) to the frame's content and
 * buffer[contentEnd, end) to its terminator. What is left is held (`held` bytes) until the next
 * chunk finishes it; take() hands the held bytes over instead (they then go out as they are).
 */
export interface FrameSplitter {
  readonly buffer: Buffer;
  readonly start: number;
  readonly contentEnd: number;
  readonly end: number;
  push(chunk: Buffer): void;
  next(): boolean;
  readonly held: number;
  take(): Buffer | undefined;
}

export interface FramedOptions {
  split: FrameSplitter;
  /** The protected frame (without its terminator). Throws a SidecarError to refuse the stream. */
  frame(bytes: Buffer): Buffer;
  maxFrameBytes: number;
  /** A frame over maxFrameBytes: the error to refuse with, or undefined to pass it on unprotected. */
  oversize(): SidecarError | undefined;
}

/**
 * Streams a body frame by frame (an NDJSON line, an SSE event): each complete frame is
 * protected and sent at once, a partial one waits for the rest (never more than
 * maxFrameBytes), so nothing is buffered beyond one frame and the first event reaches the
 * client while the upstream is still writing.
 */
export function createFramedTransform(o: FramedOptions): BodyTransform {
  const s = o.split;
  // Passing an oversize frame through: its bytes go out as they come until its terminator.
  let skipping = false;
  // A frame was refused: the frames before it still go out, then the stream fails.
  let refused: unknown;

  function push(chunk: Buffer): Buffer | undefined {
    if (refused !== undefined) throw refused;
    const out: Buffer[] = [];
    s.push(chunk);
    while (s.next()) {
      const buf = s.buffer;
      if (skipping) {
        out.push(buf.subarray(s.start, s.end));
        skipping = false;
        continue;
      }
      let frame: Buffer;
      try {
        frame = o.frame(buf.subarray(s.start, s.contentEnd));
      } catch (err) {
        if (out.length === 0) throw err;
        refused = err;
        return Buffer.concat(out);
      }
      out.push(frame, buf.subarray(s.contentEnd, s.end));
    }
    if (!skipping && s.held > o.maxFrameBytes) {
      const refusal = o.oversize();
      if (refusal !== undefined) throw refusal;
      skipping = true;
    }
    if (skipping) {
      const rest = s.take();
      if (rest !== undefined) out.push(rest);
    }
    return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
  }

  return {
    holdHead: false,
    push,
    end() {
      if (refused !== undefined) throw refused;
      const rest = s.take();
      if (rest === undefined) return undefined;
      return skipping ? rest : o.frame(rest);
    },
  };
}

/** NDJSON: a line ends at LF (a CR before it belongs to the terminator). */
export class LineSplitter implements FrameSplitter {
  buffer: Buffer = EMPTY;
  start = 0;
  contentEnd = 0;
  end = 0;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #chunk: Buffer = EMPTY;
  #pos = 0;

  push(chunk: Buffer): void {
    this.#chunk = chunk;
    this.#pos = 0;
  }

  next(): boolean {
    const chunk = this.#chunk;
    const lf = chunk.indexOf(0x0a, this.#pos);
    if (lf === -1) {
      if (this.#pos < chunk.length) {
        this.#held.push(this.#pos === 0 ? chunk : chunk.subarray(this.#pos));
        this.#heldBytes += chunk.length - this.#pos;
      }
      this.#chunk = EMPTY;
      this.#pos = 0;
      return false;
    }
    if (this.#heldBytes === 0) {
      this.buffer = chunk;
      this.start = this.#pos;
      this.end = lf + 1;
    } else {
      this.#held.push(chunk.subarray(this.#pos, lf + 1));
      this.buffer = Buffer.concat(this.#held, this.#heldBytes + lf + 1 - this.#pos);
      this.#held = [];
      this.#heldBytes = 0;
      this.start = 0;
      this.end = this.buffer.length;
    }
    const cr = this.end - 2 >= this.start && this.buffer[this.end - 2] === 0x0d;
    this.contentEnd = this.end - (cr ? 2 : 1);
    this.#pos = lf + 1;
    return true;
  }

  get held(): number {
    return this.#heldBytes;
  }

  take(): Buffer | undefined {
    const held = this.#held;
    if (held.length === 0) return undefined;
    this.#held = [];
    const out = held.length === 1 ? held[0]! : Buffer.concat(held, this.#heldBytes);
    this.#heldBytes = 0;
    return out;
  }
}
