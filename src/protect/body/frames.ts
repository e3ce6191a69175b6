import { isUtf8 } from 'node:buffer';
import type { Protector } from '../engine.ts';

/** What to do with a frame or body that cannot be parsed: throw the refusal, or pass (undefined). */
export type OnUnreadable = () => void;

/**
 * One NDJSON line: JSON protected with the field rules. A line that is not JSON (or not UTF-8)
 * is refused, or with onError: pass protected as text.
 */
export function protectLine(p: Protector, bytes: Buffer, unreadable: OnUnreadable): Buffer {
  if (!isUtf8(bytes)) {
    unreadable();
    return bytes;
  }
  const line = bytes.toString('utf8');
  if (line.trim() === '') return bytes;
  const out = p.json(line);
  if (out !== undefined) return out === line ? bytes : Buffer.from(out);
  unreadable();
  const text = p.text(line);
  return text === line ? bytes : Buffer.from(text);
}

const LINE = /\r\n|\r|\n/;

/** An SSE event's lines, and its data (its data lines joined by LF; undefined when it has none) with the index of the first data line. */
export interface EventLines {
  /** The event decoded. */
  readonly text: string;
  readonly lines: readonly string[];
  readonly data: string | undefined;
  readonly first: number;
}

/** Reads an SSE event (one SseSplitter frame) for a rewrite of its data: see withData. */
export function eventLines(bytes: Buffer): EventLines {
  const text = bytes.toString('utf8');
  const lines = text.split(LINE);
  let data: string | undefined;
  let first = -1;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!isDataLine(line)) continue;
    const value = line.length <= 5 ? '' : line[5] === ' ' ? line.slice(6) : line.slice(5);
    data = data === undefined ? value : `${data}\n${value}`;
    if (first === -1) first = i;
  }
  return { text, lines, data, first };
}

/**
 * The event with its data replaced by `data`, as one data line where the first one was
 * (JSON.stringify never writes a newline); every other line goes through `other` (default: as is).
 */
export function withData(e: EventLines, data: string, other: (line: string) => string = (line) => line): string {
  const out: string[] = [];
  for (let i = 0; i < e.lines.length; i++) {
    const line = e.lines[i]!;
    if (i === e.first) out.push(`data: ${data}`);
    else if (!isDataLine(line)) out.push(other(line));
  }
  return out.join('\n');
}

/**
 * One SSE event: when its data is JSON (most LLM and agent streams) it is protected with the
 * field rules and sent as one data line; otherwise the whole event is protected as text. Field
 * names (event, id, retry) are kept as they are.
 */
export function protectEvent(p: Protector, bytes: Buffer): Buffer {
  const e = eventLines(bytes);
  const data = e.data;
  const head = data?.trimStart()[0];
  if (data !== undefined && (head === '{' || head === '[')) {
    const json = p.json(data);
    if (json !== undefined) {
      let changed = json !== data;
      // Comments and the other fields are text too.
      const out = withData(e, json, (line) => {
        const text = p.text(line);
        changed ||= text !== line;
        return text;
      });
      return changed ? Buffer.from(out) : bytes;
    }
  }
  const text = p.text(e.text);
  return text === e.text ? bytes : Buffer.from(text);
}

function isDataLine(line: string): boolean {
  return line.startsWith('data') && (line.length === 4 || line[4] === ':');
}
