import type { FrameSplitter } from './framed.ts';

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const EMPTY = Buffer.alloc(0);
const LFLF = Buffer.from('\n\n');

/**
 * Splits server-sent-event bytes into whole events, the one SSE splitter of the sidecar (body
 * protection, the egress usage reader, the egress hold-back of the usage chunk it added). Bytes,
 * not text: callers re-emit an event they leave alone byte for byte, and a UTF-8 character cut
 * across chunks is whole once its event is. WHATWG HTML 9.2.6: lines end in CRLF, LF or CR, an
 * empty line ends an event (an empty line right after another is an event of its own, without
 * lines). An unfinished event is held as the chunks that brought it and copied once, when its
 * end arrives, so a long event costs no more than its size whatever the chunking.
 *
 * @example
 * const s = new SseSplitter();
 * s.push(chunk);
 * while (s.next()) send(s.buffer.subarray(s.start, s.end));
 * if (s.held > limit) ...
 */
export class SseSplitter implements FrameSplitter {
  buffer: Buffer = EMPTY;
  start = 0;
  contentEnd = 0;
  end = 0;

  /** Chunks (or their tails) of the unfinished event, and their size. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** The chunk being split, whether it holds a CR, where its unfinished event starts, how far it was scanned. */
  #chunk: Buffer = EMPTY;
  #hasCr = false;
  #pos = 0;
  #scan = 0;
  /** Scan state at the end of the last chunk: the next byte starts a line. */
  #lineStart = true;
  /** The last chunk ended in a CR: a LF first in the next belongs to it (CRLF). */
  #cr = false;
  /** ...and that CR was an empty line: the event ended with it. */
  #crEnds = false;

  push(chunk: Buffer): void {
    this.#chunk = chunk;
    // Streams from LLM providers carry no CR: then a native search for LF LF finds each event.
    this.#hasCr = chunk.indexOf(CR) !== -1;
    this.#pos = 0;
    this.#scan = 0;
  }

  next(): boolean {
    const buf = this.#chunk;
    const len = buf.length;
    if (len === 0) return false;
    let i = this.#scan;
    // Whether buf[i] starts a line: always after an event, from the last chunk's end at the first byte.
    let lineStart = true;
    if (i === 0 && len > 0) {
      lineStart = this.#lineStart;
      if (this.#cr) {
        this.#cr = false;
        lineStart = true;
        if (buf[0] === LF) i = 1;
        if (this.#crEnds) return this.#found(i);
      }
    }
    let blank = -1;
    if (lineStart && i < len && (buf[i] === LF || buf[i] === CR)) blank = i;
    else if (!this.#hasCr) {
      const p = buf.indexOf(LFLF, i);
      if (p !== -1) blank = p + 1;
    } else {
      for (; i < len; i++) {
        const c = buf[i];
        if (c !== LF && c !== CR) {
          lineStart = false;
          continue;
        }
        if (lineStart) {
          blank = i;
          break;
        }
        lineStart = true;
        if (c === CR && i + 1 < len && buf[i + 1] === LF) i++;
      }
    }
    if (blank !== -1) {
      if (buf[blank] === LF) return this.#found(blank + 1);
      if (blank + 1 < len) return this.#found(buf[blank + 1] === LF ? blank + 2 : blank + 1);
    }
    // No end yet: hold the rest, and note how the chunk ended for the next one.
    const last = buf[len - 1];
    this.#lineStart = last === LF;
    this.#cr = last === CR;
    this.#crEnds = blank === len - 1;
    if (this.#pos < len) {
      this.#held.push(this.#pos === 0 ? buf : buf.subarray(this.#pos));
      this.#heldBytes += len - this.#pos;
    }
    this.#chunk = EMPTY;
    this.#pos = this.#scan = 0;
    return false;
  }

  /** Bytes of the unfinished event held back (after next() returned false). */
  get held(): number {
    return this.#heldBytes;
  }

  take(): Buffer | undefined {
    const held = this.#held;
    if (held.length === 0) return undefined;
    const out = held.length === 1 ? held[0]! : Buffer.concat(held, this.#heldBytes);
    this.#held = [];
    this.#heldBytes = 0;
    return out;
  }

  /** The event ends before chunk[end]: what was held and chunk[#pos, end). */
  #found(end: number): boolean {
    const chunk = this.#chunk;
    let buf: Buffer;
    if (this.#heldBytes === 0) {
      buf = chunk;
      this.start = this.#pos;
      this.end = end;
    } else {
      this.#held.push(chunk.subarray(this.#pos, end));
      buf = Buffer.concat(this.#held, this.#heldBytes + end - this.#pos);
      this.start = 0;
      this.end = buf.length;
      this.#held = [];
      this.#heldBytes = 0;
    }
    this.buffer = buf;
    // Back over the empty line's terminator and the last line's (CR LF is always one).
    let e = this.end - 1;
    if (buf[e] === LF && e > this.start && buf[e - 1] === CR) e--;
    if (e > this.start) {
      e--;
      if (buf[e] === LF && e > this.start && buf[e - 1] === CR) e--;
    }
    this.contentEnd = e;
    this.#pos = this.#scan = end;
    return true;
  }
}

/** One dispatched event: its type (the `event` field, undefined when absent or empty) and data lines joined by LF. */
export interface SseEvent {
  type: string | undefined;
  data: string;
}

/**
 * The fields of one event, text[start, end) (its lines as SseSplitter found them, decoded):
 * what an EventSource dispatches, or undefined for an event without data (comments, id or
 * retry only). Only `event` and `data` are read; the others are ignored as a reader of usage can.
 * `hasCr`: false when the caller knows `text` has no CR (saves a search per line).
 */
export function parseEvent(text: string, start = 0, end = text.length, hasCr = true): SseEvent | undefined {
  const len = end;
  let type: string | undefined;
  let data: string | undefined;
  let i = start;
  while (i < len) {
    let eol = text.indexOf('\n', i);
    if (eol === -1 || eol > len) eol = len;
    if (hasCr) {
      const cr = text.indexOf('\r', i);
      if (cr !== -1 && cr < eol) eol = cr;
    }
    const colon = text.indexOf(':', i);
    const name = colon === -1 || colon > eol ? eol : colon;
    if (name > i) {
      let value = name + 1;
      if (text.charCodeAt(value) === SPACE) value++;
      if (value > eol) value = eol;
      if (name - i === 4 && text.startsWith('data', i)) {
        const v = text.slice(value, eol);
        data = data === undefined ? v : `${data}\n${v}`;
      } else if (name - i === 5 && text.startsWith('event', i)) {
        type = text.slice(value, eol) || undefined;
      }
    }
    i = eol + (text.charCodeAt(eol) === CR && text.charCodeAt(eol + 1) === LF ? 2 : 1);
  }
  return data === undefined ? undefined : { type, data };
}
