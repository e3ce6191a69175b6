import type { FrameSplitter } from './framed.ts';

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const COLON = 0x3a;
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
 * A reader of the events' fields (the egress usage reader) hands a chunk over with its text
 * when each byte is a character of it (ASCII, what providers mostly send; a byte that is not
 * UTF-8 reads as U+FFFD either way): the splitter then goes through that text line by line and
 * reads `event` and `data` on the way, so that no event is searched twice, decoded on its own or
 * copied. Protection does not: it works on bytes.
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
  /**
   * Whether next() read the event's fields, as parseEvent would, into `type` and `data` (data
   * undefined: an event without data). It does when the chunk came with its text, held no CR and
   * the event lies wholly in it; otherwise the caller reads buffer[start, contentEnd) itself.
   */
  parsed = false;
  type: string | undefined;
  data: string | undefined;

  /** Chunks (or their tails) of the unfinished event, and their size. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** The chunk being split, whether it holds a CR, where its unfinished event starts, how far it was scanned. */
  #chunk: Buffer = EMPTY;
  /** The chunk's text (a character per byte), when the caller gave it and it holds no CR. */
  #text: string | undefined;
  #hasCr = false;
  #pos = 0;
  #scan = 0;
  /** Scan state at the end of the last chunk: the next byte starts a line. */
  #lineStart = true;
  /** The last chunk ended in a CR: a LF first in the next belongs to it (CRLF). */
  #cr = false;
  /** ...and that CR was an empty line: the event ended with it. */
  #crEnds = false;

  /** `text`: the chunk decoded, only when each byte is a character of it (see above). */
  push(chunk: Buffer, text?: string): void {
    this.#chunk = chunk;
    // Streams from LLM providers carry no CR: then a native search for LF LF finds each event,
    // or, in the text, one for LF finds each line.
    this.#hasCr = text === undefined ? chunk.indexOf(CR) !== -1 : text.indexOf('\r') !== -1;
    this.#text = this.#hasCr ? undefined : text;
    this.#pos = 0;
    this.#scan = 0;
  }

  next(): boolean {
    // Nothing held (nor taken in the middle of a line): the next event starts a line of this chunk.
    const text = this.#text;
    if (text !== undefined && this.#heldBytes === 0 && (this.#scan !== 0 || (this.#lineStart && !this.#cr))) return this.#nextInText(text);
    return this.#nextInBytes();
  }

  #nextInBytes(): boolean {
    const buf = this.#chunk;
    const len = buf.length;
    if (len === 0) return false;
    let i = this.#scan;
    // Whether buf[i] starts a line: always after an event, from the last chunk's end at the first byte.
    let lineStart = true;
    if (i === 0) {
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
    return this.#hold(blank === len - 1);
  }

  /**
   * next() in the chunk's text, which holds no CR (what providers send), from the start of a
   * line with nothing held: line by line (a search for one character costs less than one for
   * two), reading the fields on the way, until an empty line ends the event.
   */
  #nextInText(text: string): boolean {
    const start = this.#scan;
    if (text.length === 0) return false;
    let type: string | undefined;
    let data: string | undefined;
    let lf = -1;
    if (text.charCodeAt(start) === LF) lf = start;
    else {
      let line = start;
      for (let eol = text.indexOf('\n', start); eol !== -1; eol = text.indexOf('\n', line)) {
        if (isData(text, line, eol)) {
          const v = text.slice(valueAt(text, line + 5, eol), eol);
          data = data === undefined ? v : `${data}\n${v}`;
        } else if (isEvent(text, line, eol)) {
          type = text.slice(valueAt(text, line + 6, eol), eol) || undefined;
        }
        line = eol + 1;
        if (text.charCodeAt(line) === LF) {
          lf = line;
          break;
        }
      }
    }
    if (lf === -1) return this.#hold(false);
    this.buffer = this.#chunk;
    this.start = start;
    this.contentEnd = lf === start ? start : lf - 1;
    this.end = this.#pos = this.#scan = lf + 1;
    this.parsed = true;
    this.type = type;
    this.data = data;
    return true;
  }

  /** No end in the rest of the chunk: hold it, and note how the chunk ended for the next one. */
  #hold(crEnds: boolean): false {
    const buf = this.#chunk;
    const len = buf.length;
    const last = buf[len - 1];
    this.#lineStart = last === LF;
    this.#cr = last === CR;
    this.#crEnds = crEnds;
    if (this.#pos < len) {
      this.#held.push(this.#pos === 0 ? buf : buf.subarray(this.#pos));
      this.#heldBytes += len - this.#pos;
    }
    this.#chunk = EMPTY;
    this.#text = undefined;
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
    this.parsed = false;
    this.type = this.data = undefined;
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
 * SseSplitter reads the same fields itself in the text a reader gives it.
 */
export function parseEvent(text: string, start = 0, end = text.length): SseEvent | undefined {
  // Bounded to the event, so that no search for a line's end runs on past it.
  if (start !== 0 || end !== text.length) text = text.slice(start, end);
  const len = text.length;
  let type: string | undefined;
  let data: string | undefined;
  // The next CR, searched again only once passed: one search per CR, not one per line.
  let cr = -1;
  let i = 0;
  while (i < len) {
    let eol = text.indexOf('\n', i);
    if (eol === -1) eol = len;
    if (cr < i) {
      cr = text.indexOf('\r', i);
      if (cr === -1) cr = len;
    }
    if (cr < eol) eol = cr;
    if (isData(text, i, eol)) {
      const v = text.slice(valueAt(text, i + 5, eol), eol);
      data = data === undefined ? v : `${data}\n${v}`;
    } else if (isEvent(text, i, eol)) {
      type = text.slice(valueAt(text, i + 6, eol), eol) || undefined;
    }
    i = eol + (text.charCodeAt(eol) === CR && text.charCodeAt(eol + 1) === LF ? 2 : 1);
  }
  return data === undefined ? undefined : { type, data };
}

/** Whether the line text[i, eol) is the field `data`: a field's name is what comes before the first colon, or the whole line. */
function isData(text: string, i: number, eol: number): boolean {
  // Character by character: startsWith costs more than this.
  return (
    eol - i >= 4 &&
    text.charCodeAt(i) === 0x64 &&
    text.charCodeAt(i + 1) === 0x61 &&
    text.charCodeAt(i + 2) === 0x74 &&
    text.charCodeAt(i + 3) === 0x61 &&
    (eol - i === 4 || text.charCodeAt(i + 4) === COLON)
  );
}

/** Whether the line text[i, eol) is the field `event`. */
function isEvent(text: string, i: number, eol: number): boolean {
  return (
    eol - i >= 5 &&
    text.charCodeAt(i) === 0x65 &&
    text.charCodeAt(i + 1) === 0x76 &&
    text.charCodeAt(i + 2) === 0x65 &&
    text.charCodeAt(i + 3) === 0x6e &&
    text.charCodeAt(i + 4) === 0x74 &&
    (eol - i === 5 || text.charCodeAt(i + 5) === COLON)
  );
}

/** Where a field's value starts: after the colon (at value - 1) and one space. */
function valueAt(text: string, value: number, eol: number): number {
  if (value < eol && text.charCodeAt(value) === SPACE) value++;
  return value > eol ? eol : value;
}
