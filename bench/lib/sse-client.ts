import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { EventCounter, type StreamClientOptions, type StreamSamples } from './sse.ts';

/**
 * The SSE scenarios' load: `streams` slots, each starting its next stream as soon as the last
 * one ended, until `seconds` have passed (streams under way then are finished). Per stream:
 * time to the first complete event and to the end of the body, from just before the request.
 * A stream counts only with status 200 and exactly `events` events.
 *
 * Usage: node bench/lib/sse-client.ts '<StreamClientOptions as JSON>'
 */

const o = JSON.parse(process.argv[2] ?? '') as StreamClientOptions;
const target = new URL(o.url);
const pool = new Pool(target.origin, { connections: o.streams, pipelining: 1, bodyTimeout: 30_000, headersTimeout: 30_000 });
const samples: StreamSamples = { durationSeconds: 0, ttfeUs: [], totalUs: [], events: 0, errors: { status: 0, short: 0, error: 0 } };

async function one(): Promise<void> {
  const t0 = performance.now();
  try {
    const res = await pool.request({ path: target.pathname + target.search, method: o.method as 'GET' | 'POST', headers: o.headers, body: o.body ?? null });
    if (res.statusCode !== 200) {
      samples.errors.status++;
      await res.body.dump();
      return;
    }
    const counter = new EventCounter();
    let first: number | undefined;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (counter.feed(chunk) > 0 && first === undefined) first = performance.now();
    }
    const end = performance.now();
    samples.events += counter.count;
    if (counter.count !== o.events || first === undefined) {
      samples.errors.short++;
      return;
    }
    samples.ttfeUs.push((first - t0) * 1000);
    samples.totalUs.push((end - t0) * 1000);
  } catch {
    samples.errors.error++;
    await sleep(10); // a refused connection must not spin the slot
  }
}

const start = performance.now();
const until = start + o.seconds * 1000;
await Promise.all(
  Array.from({ length: o.streams }, async () => {
    while (performance.now() < until) await one();
  }),
);
samples.durationSeconds = (performance.now() - start) / 1000;
await pool.close();
writeFileSync(o.out, JSON.stringify(samples));
