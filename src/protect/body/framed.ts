import type { BodyTransform } from '../../core/index.ts';
import type { SidecarError } from '../../errors/index.ts';

/** Where a frame ends in `buf` (searching from `from`): its content ends at `end`, the next frame starts at `next`. */
export type FrameFinder = (buf: Buffer, from: number) => { end: number; next: number } | undefined;

export interface FramedOptions {
  find: FrameFinder;
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
  let pending: Buffer = Buffer.alloc(0);
  let searchFrom = 0;
  // Passing an oversize frame through: its bytes go out as they come until its terminator.
  let skipping = false;
  // A frame was refused: the frames before it still go out, then the stream fails.
  let refused: unknown;

  function drain(buf: Buffer, final: boolean): Buffer | undefined {
    if (refused !== undefined) throw refused;
    const out: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const found = o.find(buf, Math.max(pos, searchFrom));
      if (found === undefined) break;
      let frame: Buffer;
      try {
        frame = skipping ? buf.subarray(pos, found.end) : o.frame(buf.subarray(pos, found.end));
      } catch (err) {
        if (out.length === 0) throw err;
        refused = err;
        return Buffer.concat(out);
      }
      out.push(frame, buf.subarray(found.end, found.next));
      skipping = false;
      pos = found.next;
      searchFrom = pos;
    }
    let rest = buf.subarray(pos);
    if (final && rest.length > 0) {
      out.push(skipping ? rest : o.frame(rest));
      rest = Buffer.alloc(0);
    } else if (skipping) {
      out.push(rest);
      rest = Buffer.alloc(0);
    } else if (rest.length > o.maxFrameBytes) {
      const refusal = o.oversize();
      if (refusal !== undefined) throw refusal;
      skipping = true;
      out.push(rest);
      rest = Buffer.alloc(0);
    }
    // A terminator may straddle two chunks: search again from just before the end.
    searchFrom = Math.max(0, rest.length - 3);
    pending = rest;
    return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
  }

  return {
    holdHead: false,
    push: (chunk) => drain(pending.length === 0 ? chunk : Buffer.concat([pending, chunk]), false),
    end: () => drain(pending, true),
  };
}

/** NDJSON: a line ends at LF (a CR before it belongs to the terminator). */
export const findLine: FrameFinder = (buf, from) => {
  const lf = buf.indexOf(0x0a, from);
  if (lf === -1) return undefined;
  return { end: lf > 0 && buf[lf - 1] === 0x0d ? lf - 1 : lf, next: lf + 1 };
};

/**
 * SSE (WHATWG HTML 9.2.6): an event ends at a blank line; lines end in CRLF, LF or CR. A CR
 * at the end of the buffer may be the start of a CRLF: wait for the next byte.
 */
export const findEvent: FrameFinder = (buf, from) => {
  const len = buf.length;
  for (let i = from; i < len; i++) {
    const c = buf[i]!;
    if (c !== 0x0a && c !== 0x0d) continue;
    const first = terminatorLength(buf, i);
    if (first === 0) return undefined;
    const j = i + first;
    if (j >= len) return undefined;
    const d = buf[j]!;
    if (d !== 0x0a && d !== 0x0d) {
      i = j - 1;
      continue;
    }
    const second = terminatorLength(buf, j);
    if (second === 0) return undefined;
    return { end: i, next: j + second };
  }
  return undefined;
};

/** 1 for LF or a CR followed by something else, 2 for CRLF, 0 when a CR is the last byte so far. */
function terminatorLength(buf: Buffer, i: number): number {
  if (buf[i] === 0x0a) return 1;
  if (i + 1 >= buf.length) return 0;
  return buf[i + 1] === 0x0a ? 2 : 1;
}
