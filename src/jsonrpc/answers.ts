import type { IncomingHttpHeaders } from 'node:http';
import type { BodyTransform, ResponseBodyHook } from '../core/index.ts';
import { eventLines, SseSplitter } from '../protect/index.ts';
import type { RpcId } from './message.ts';

/** The server's answer to one JSON-RPC request, as telemetry reads it. */
export type RpcAnswer =
  /** A JSON-RPC error response with the request's id, and its code (undefined when not a number). */
  | { readonly kind: 'error'; readonly code: number | undefined }
  /** A JSON-RPC result with the request's id. */
  | { readonly kind: 'result'; readonly result: unknown }
  /** An HTTP error status: no JSON-RPC answer is read. */
  | { readonly kind: 'http'; readonly status: number };

/**
 * A response hook that reads, without changing a byte, the answer to the request with `id`:
 * a JSON body (held up to `max` bytes, then parsed once at its end) or each event of an SSE
 * stream (an event up to `max` bytes) whose data is a response with that id. `seen` is called
 * for each such response (a stream may carry more than one: A2A task updates), or once with
 * the HTTP status when the status is an error. A body that is compressed, too large or not
 * JSON is let through unread. The answer goes to the client as the server sent it: this hook
 * only looks.
 */
export function readAnswers(id: RpcId, max: number, seen: (answer: RpcAnswer) => void): ResponseBodyHook {
  return (status: number, headers: IncomingHttpHeaders): BodyTransform | undefined => {
    if (status >= 400) {
      seen({ kind: 'http', status });
      return undefined;
    }
    const encoding = headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return undefined;
    const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const answer = (message: unknown) => {
      const a = answerOf(message, id);
      if (a !== undefined) seen(a);
    };
    if (type === 'text/event-stream') return sseReader(max, answer);
    if (type === 'application/json') return jsonReader(max, answer);
    return undefined;
  };
}

function answerOf(message: unknown, id: RpcId): RpcAnswer | undefined {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return undefined;
  const m = message as Record<string, unknown>;
  if (m.id !== id || Object.hasOwn(m, 'method')) return undefined;
  const error = m.error;
  if (typeof error === 'object' && error !== null) {
    const code = (error as Record<string, unknown>).code;
    return { kind: 'error', code: typeof code === 'number' ? code : undefined };
  }
  return { kind: 'result', result: m.result };
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function jsonReader(max: number, answer: (m: unknown) => void): BodyTransform {
  let chunks: Buffer[] | undefined = [];
  let size = 0;
  return {
    holdHead: false,
    push(chunk) {
      if (chunks !== undefined) {
        size += chunk.length;
        if (size > max) chunks = undefined;
        else chunks.push(chunk);
      }
      return chunk;
    },
    end() {
      if (chunks !== undefined) answer(parse(Buffer.concat(chunks, size).toString('utf8')));
      return undefined;
    },
  };
}

function sseReader(max: number, answer: (m: unknown) => void): BodyTransform {
  let split: SseSplitter | undefined = new SseSplitter();
  return {
    holdHead: false,
    push(chunk) {
      const s = split;
      if (s === undefined) return chunk;
      s.push(chunk);
      while (s.next()) {
        const data = s.parsed ? s.data : eventLines(s.buffer.subarray(s.start, s.contentEnd)).data;
        if (data !== undefined && data.length > 0 && data.length <= max) answer(parse(data));
      }
      // An event longer than `max` is not read: the rest of the stream passes unread.
      if (s.held > max) split = undefined;
      return chunk;
    },
    end() {
      return undefined;
    },
  };
}
