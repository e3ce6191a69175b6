import { gzipSync } from 'node:zlib';
import { startServer } from './helpers.ts';

/**
 * A fake LLM provider: a real HTTP server that answers with the response shapes of the
 * Anthropic Messages API and the OpenAI Chat Completions and Responses APIs, streamed (SSE)
 * or not, with cache tokens and rate-limit headers. Tests queue answers; every request is
 * recorded with its headers and body.
 */
export interface Seen {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  /** A JSON body. */
  json?: unknown;
  gzip?: boolean;
  /** Raw SSE events, each written as one chunk (include the blank line). */
  events?: string[];
  /** Destroy the connection after this many events. */
  cutAfter?: number;
}

export interface FakeProvider {
  url: string;
  seen: Seen[];
  /** Queues the answer to the next request. */
  next(answer: Answer): void;
  /** The exact bytes of the last response body written. */
  lastBody(): Buffer;
  close(): Promise<void>;
}

export async function startFakeProvider(): Promise<FakeProvider> {
  const seen: Seen[] = [];
  const queue: Answer[] = [];
  let last = Buffer.alloc(0);
  const server = await startServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(parts).toString() });
      const a = queue.shift() ?? { json: { ok: true } };
      if (a.events !== undefined) {
        res.writeHead(a.status ?? 200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...a.headers });
        last = Buffer.from(a.events.join(''));
        void writeEvents(res, a.events, a.cutAfter);
        return;
      }
      let body = Buffer.from(JSON.stringify(a.json ?? {}));
      const headers: Record<string, string> = { 'content-type': 'application/json', ...a.headers };
      if (a.gzip) {
        body = gzipSync(body);
        headers['content-encoding'] = 'gzip';
      }
      last = body;
      res.writeHead(a.status ?? 200, headers);
      res.end(body);
    });
  });
  return {
    url: server.url,
    seen,
    next: (a) => void queue.push(a),
    lastBody: () => last,
    close: server.close,
  };
}

async function writeEvents(res: import('node:http').ServerResponse, events: string[], cutAfter: number | undefined): Promise<void> {
  for (const [i, e] of events.entries()) {
    if (cutAfter !== undefined && i === cutAfter) {
      // Let the events written so far leave before the cut.
      await new Promise((r) => setTimeout(r, 50));
      res.socket?.destroy();
      return;
    }
    res.write(e);
    // One event per chunk on the wire, as providers flush them.
    await new Promise((r) => setImmediate(r));
  }
  res.end();
}

export const sse = (event: string | undefined, data: unknown): string =>
  `${event === undefined ? '' : `event: ${event}\n`}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

/** Anthropic rate-limit headers: `used` of each limit spent. */
export function anthropicLimits(l: {
  requests: [number, number];
  tokens: [number, number];
  input: [number, number];
  output: [number, number];
}): Record<string, string> {
  const h: Record<string, string> = {};
  for (const [type, [limit, remaining]] of [
    ['requests', l.requests],
    ['tokens', l.tokens],
    ['input-tokens', l.input],
    ['output-tokens', l.output],
  ] as const) {
    h[`anthropic-ratelimit-${type}-limit`] = String(limit);
    h[`anthropic-ratelimit-${type}-remaining`] = String(remaining);
    h[`anthropic-ratelimit-${type}-reset`] = '2026-11-20T10:00:00Z';
  }
  return h;
}

/** An Anthropic Messages stream: message_start with the input usage, text deltas, cumulative message_delta events. */
export function anthropicStream(o: { model: string; input: number; cacheRead: number; cacheWrite: number; outputs: number[]; text?: string[] }): string[] {
  const usage = { input_tokens: o.input, cache_creation_input_tokens: o.cacheWrite, cache_read_input_tokens: o.cacheRead, output_tokens: 1 };
  const events = [
    sse('message_start', {
      type: 'message_start',
      message: { id: 'msg_01', type: 'message', role: 'assistant', model: o.model, content: [], stop_reason: null, usage },
    }),
    sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    sse('ping', { type: 'ping' }),
  ];
  for (const t of o.text ?? ['Hello', ', world'])
    events.push(sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } }));
  events.push(sse('content_block_stop', { type: 'content_block_stop', index: 0 }));
  // Cumulative: each message_delta repeats the input fields and carries the output so far.
  for (const out of o.outputs) {
    events.push(
      sse('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { ...usage, output_tokens: out } }),
    );
  }
  events.push(sse('message_stop', { type: 'message_stop' }));
  return events;
}

/** An OpenAI Chat Completions stream; with `usage`, the include_usage chunk (choices: []) before [DONE]. */
export function openaiChatStream(o: { model: string; text: string[]; usage?: { prompt: number; cached: number; completion: number } }): string[] {
  const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1_790_000_000, model: o.model, system_fingerprint: 'fp_1' };
  const extra = o.usage === undefined ? {} : { usage: null };
  const events = [sse(undefined, { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], ...extra })];
  for (const t of o.text) events.push(sse(undefined, { ...base, choices: [{ index: 0, delta: { content: t }, finish_reason: null }], ...extra }));
  events.push(sse(undefined, { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], ...extra }));
  if (o.usage !== undefined) {
    const u = o.usage;
    events.push(
      sse(undefined, {
        ...base,
        choices: [],
        usage: {
          prompt_tokens: u.prompt,
          completion_tokens: u.completion,
          total_tokens: u.prompt + u.completion,
          prompt_tokens_details: { cached_tokens: u.cached },
          completion_tokens_details: { reasoning_tokens: 0 },
        },
      }),
    );
  }
  events.push('data: [DONE]\n\n');
  return events;
}

/** An OpenAI Responses API stream, usage on response.completed. */
export function openaiResponsesStream(o: { model: string; input: number; cached: number; output: number }): string[] {
  const response = { id: 'resp_1', object: 'response', model: o.model, status: 'in_progress', output: [], usage: null };
  return [
    sse('response.created', { type: 'response.created', sequence_number: 0, response }),
    sse('response.output_text.delta', {
      type: 'response.output_text.delta',
      sequence_number: 1,
      item_id: 'msg_1',
      output_index: 0,
      content_index: 0,
      delta: 'Hi',
    }),
    sse('response.completed', {
      type: 'response.completed',
      sequence_number: 2,
      response: {
        ...response,
        status: 'completed',
        usage: {
          input_tokens: o.input,
          input_tokens_details: { cached_tokens: o.cached },
          output_tokens: o.output,
          output_tokens_details: { reasoning_tokens: 3 },
          total_tokens: o.input + o.output,
        },
      },
    }),
  ];
}

/** Prometheus text as samples. */
export function samples(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample of `name` whose labels include `labels`, or undefined. */
export function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const found = samples(text).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/**
 * A provider that answers every Messages call with the same usage, after `delayMs` (so that
 * concurrent calls overlap); `calls()` counts the calls it got.
 */
export async function startMessagesProvider(
  usage: { input: number; output: number },
  delayMs = 0,
): Promise<Awaited<ReturnType<typeof startServer>> & { calls(): number }> {
  let calls = 0;
  const server = await startServer((req, res) => {
    req.resume();
    req.on('end', () => {
      calls++;
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: `msg_${calls}`,
            type: 'message',
            role: 'assistant',
            model: 'claude-sonnet-4-6',
            content: [{ type: 'text', text: 'ok' }],
            stop_reason: 'end_turn',
            usage: { input_tokens: usage.input, output_tokens: usage.output },
          }),
        );
      }, delayMs);
    });
  });
  return { ...server, calls: () => calls };
}
