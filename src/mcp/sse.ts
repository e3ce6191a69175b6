import type { BodyTransform } from '../core/index.ts';

/**
 * Where the SSE event starting at `from` ends (WHATWG HTML 9.2.6: a blank line; lines end in
 * CRLF, LF or CR): its content ends at `end`, the next event starts at `next`. A CR as the
 * last byte so far may be half a CRLF, so the search waits for more.
 */
export function findEvent(buf: Buffer, from: number): { end: number; next: number } | undefined {
  const len = buf.length;
  for (let i = from; i < len; i++) {
    const c = buf[i]!;
    if (c !== 0x0a && c !== 0x0d) continue;
    const first = eol(buf, i);
    if (first === 0) return undefined;
    const j = i + first;
    if (j >= len) return undefined;
    if (buf[j] !== 0x0a && buf[j] !== 0x0d) {
      i = j - 1;
      continue;
    }
    const second = eol(buf, j);
    if (second === 0) return undefined;
    return { end: i, next: j + second };
  }
  return undefined;
}

function eol(buf: Buffer, i: number): number {
  if (buf[i] === 0x0a) return 1;
  if (i + 1 >= buf.length) return 0;
  return buf[i + 1] === 0x0a ? 2 : 1;
}

/**
 * An SSE body rewritten event by event: each complete event goes through `event` and out at
 * once, a partial one waits (never more than `max` bytes, past which `oversize` throws).
 */
export function eventTransform(event: (bytes: Buffer) => Buffer, max: number, oversize: () => Error): BodyTransform {
  let pending: Buffer = Buffer.alloc(0);
  const drain = (buf: Buffer, final: boolean): Buffer | undefined => {
    const out: Buffer[] = [];
    let pos = 0;
    for (let found = findEvent(buf, 0); found !== undefined; found = findEvent(buf, pos)) {
      out.push(event(buf.subarray(pos, found.end)), buf.subarray(found.end, found.next));
      pos = found.next;
    }
    pending = buf.subarray(pos);
    if (final && pending.length > 0) {
      out.push(event(pending));
      pending = Buffer.alloc(0);
    } else if (pending.length > max) throw oversize();
    return out.length === 0 ? undefined : Buffer.concat(out);
  };
  return {
    holdHead: false,
    push: (chunk) => drain(pending.length === 0 ? chunk : Buffer.concat([pending, chunk]), false),
    end: () => drain(pending, true),
  };
}

const LINE = /\r\n|\r|\n/;

/** The data of an event (its data lines joined by LF), or undefined when it has none. */
export function eventData(bytes: Buffer): { lines: string[]; data: string | undefined } {
  const lines = bytes.toString('utf8').split(LINE);
  let data: string | undefined;
  for (const line of lines) {
    if (!isData(line)) continue;
    const value = line.length <= 5 ? '' : line[5] === ' ' ? line.slice(6) : line.slice(5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return { lines, data };
}

/** The event with its data replaced by `data` (one line: JSON.stringify never writes a newline), other fields kept. */
export function withData(lines: readonly string[], data: string): Buffer {
  const out: string[] = [];
  let written = false;
  for (const line of lines) {
    if (!isData(line)) out.push(line);
    else if (!written) {
      out.push(`data: ${data}`);
      written = true;
    }
  }
  return Buffer.from(out.join('\n'));
}

function isData(line: string): boolean {
  return line.startsWith('data') && (line.length === 4 || line[4] === ':');
}
