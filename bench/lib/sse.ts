import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, HOST, waitFor200 } from './net.ts';
import { runChecked, startChild } from './procs.ts';
import type { RequestShape, Server } from './servers.ts';
import { percentile } from './stats.ts';

/**
 * The SSE scenarios: an upstream that answers every request with a stream of events (the
 * chunks of a streamed chat completion, written back to back, one write per event) and a
 * client that keeps a number of such streams going for a while and times each: time to the
 * first complete event, time to the end, and events per second over all of them.
 */

const UPSTREAM = fileURLToPath(new URL('./sse-upstream.ts', import.meta.url));
const CLIENT = fileURLToPath(new URL('./sse-client.ts', import.meta.url));

/** The events of one stream: n - 1 chat completion chunks and `data: [DONE]`, each ending in a blank line. */
export function sseEvents(n: number): string[] {
  const events: string[] = [];
  for (let i = 0; i < n - 1; i++) {
    const chunk = {
      id: 'chatcmpl-bench',
      object: 'chat.completion.chunk',
      created: 0,
      model: 'bench',
      choices: [{ index: 0, delta: { content: `token-${String(i).padStart(5, '0')} ` }, finish_reason: null }],
    };
    events.push(`data: ${JSON.stringify(chunk)}\n\n`);
  }
  if (n > 0) events.push('data: [DONE]\n\n');
  return events;
}

/**
 * Counts complete SSE events in a byte stream: an event ends with a blank line ("\n\n"), which
 * may be split across chunks. (The bench's upstream writes "\n" line ends only.)
 */
export class EventCounter {
  count = 0;
  /** The last byte fed was a newline that did not end an event. */
  private pending = false;

  /** Feeds a chunk; returns how many events it completed. */
  feed(chunk: Uint8Array): number {
    let n = 0;
    // Index of the last newline seen that did not end an event; -1 none, -2 the last one ended an event.
    let last = -1;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) {
      if (i === 0 ? this.pending : last === i - 1) {
        n++;
        last = -2;
      } else {
        last = i;
      }
    }
    if (chunk.length > 0) this.pending = last === chunk.length - 1;
    this.count += n;
    return n;
  }
}

/** What the client writes: per completed stream, its times (µs); errors by kind. */
export interface StreamSamples {
  durationSeconds: number;
  ttfeUs: number[];
  totalUs: number[];
  events: number;
  /** status: an answer other than 200; short: fewer (or more) events than expected; error: the request failed. */
  errors: { status: number; short: number; error: number };
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** What one stream phase measured. */
export interface StreamResult {
  streams: number;
  durationSeconds: number;
  streamsPerSecond: number;
  eventsPerSecond: number;
  errors: StreamSamples['errors'];
  ttfeUs: Percentiles;
  totalUs: Percentiles;
}

export function percentiles(values: readonly number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  return {
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

export function summarizeStreams(s: StreamSamples): StreamResult {
  return {
    streams: s.totalUs.length,
    durationSeconds: s.durationSeconds,
    streamsPerSecond: s.totalUs.length / s.durationSeconds,
    eventsPerSecond: s.events / s.durationSeconds,
    errors: s.errors,
    ttfeUs: percentiles(s.ttfeUs),
    totalUs: percentiles(s.totalUs),
  };
}

/** The fake event-stream upstream as a child process (sse-upstream.ts). */
export async function startSseUpstream(events: number, cpus: string | undefined): Promise<Server> {
  const port = await freePort();
  const child = startChild('sse-upstream', process.execPath, [UPSTREAM, `${HOST}:${port}`, String(events)], { cpus });
  const url = `http://${HOST}:${port}/`;
  await waitFor200(url, child);
  return { name: 'direct', url, child };
}

/** What the client is told (one JSON argument). */
export interface StreamClientOptions {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string | undefined;
  /** Concurrent streams, each started as soon as the last one of its slot ended. */
  streams: number;
  seconds: number;
  events: number;
  /** Where it writes its StreamSamples as JSON. */
  out: string;
}

/** Runs the client (a child process, pinnable like wrk and vegeta) and summarizes what it measured. */
export async function runStreams(
  url: string,
  shape: RequestShape,
  o: { streams: number; seconds: number; events: number; dir: string; name: string; cpus: string | undefined },
): Promise<StreamResult> {
  const out = join(o.dir, `sse-${o.name}.json`);
  const args: StreamClientOptions = {
    url,
    method: shape.method ?? 'GET',
    headers: shape.headers,
    body: shape.body,
    streams: o.streams,
    seconds: o.seconds,
    events: o.events,
    out,
  };
  await runChecked('sse client', process.execPath, [CLIENT, JSON.stringify(args)], (o.seconds + 60) * 1000, { cpus: o.cpus });
  return summarizeStreams(JSON.parse(readFileSync(out, 'utf8')) as StreamSamples);
}

/** One stream through the server before measuring: 200, text/event-stream, every event. */
export async function checkStream(server: Server, url: string, shape: RequestShape, events: number): Promise<void> {
  const got = await new Promise<{ status: number; type: string; events: number }>((resolve, reject) => {
    const req = http.request(url, { method: shape.method ?? 'GET', headers: shape.headers, agent: false, timeout: 10_000 }, (res) => {
      const counter = new EventCounter();
      res.on('data', (d: Buffer) => counter.feed(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), events: counter.count }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${server.name}: no complete stream from ${url} within 10 s`)));
    req.on('error', reject);
    req.end(shape.body);
  });
  if (got.status !== 200 || !got.type.startsWith('text/event-stream') || got.events !== events) {
    throw new Error(`${server.name} at ${url} answered ${got.status} ${got.type} with ${got.events} events, expected 200 text/event-stream with ${events}`);
  }
}
