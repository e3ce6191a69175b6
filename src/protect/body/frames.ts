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

/**
 * One SSE event: when its data is JSON (most LLM and agent streams) it is protected with the
 * field rules and sent as one data line; otherwise the whole event is protected as text. Field
 * names (event, id, retry) are kept as they are.
 */
export function protectEvent(p: Protector, bytes: Buffer): Buffer {
  const event = bytes.toString('utf8');
  const lines = event.split(LINE);
  let data: string | undefined;
  let first = -1;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith('data')) continue;
    if (line.length > 4 && line[4] !== ':') continue;
    const value = line.length <= 5 ? '' : line[5] === ' ' ? line.slice(6) : line.slice(5);
    data = data === undefined ? value : `${data}\n${value}`;
    if (first === -1) first = i;
  }
  const head = data?.trimStart()[0];
  if (data !== undefined && (head === '{' || head === '[')) {
    const json = p.json(data);
    if (json !== undefined) {
      let changed = json !== data;
      const out: string[] = [];
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!;
        if (i === first) out.push(`data: ${json}`);
        else if (!isDataLine(line)) {
          // Comments and the other fields are text too.
          const text = p.text(line);
          changed ||= text !== line;
          out.push(text);
        }
      }
      return changed ? Buffer.from(out.join('\n')) : bytes;
    }
  }
  const text = p.text(event);
  return text === event ? bytes : Buffer.from(text);
}

function isDataLine(line: string): boolean {
  return line.startsWith('data') && (line.length === 4 || line[4] === ':');
}
