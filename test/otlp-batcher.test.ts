import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Batcher, type BatchTransport } from '../src/telemetry/otlp/batcher.ts';
import type { DropCounter, Signal } from '../src/telemetry/pipeline.ts';

/** A transport that answers as told and records every batch it was handed (in-process, no network). */
function transport(answer: () => ExportResult['code']) {
  const batches: number[][] = [];
  const t: BatchTransport<number> = {
    export(items, done) {
      batches.push(items);
      setImmediate(() => done({ code: answer() }));
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  return { t, batches };
}

function drops() {
  const seen: Array<{ signal: Signal; reason: string; count: number }> = [];
  const counter: DropCounter = { dropped: (signal, reason, count) => void seen.push({ signal, reason, count }) };
  const total = (reason: string) => seen.filter((d) => d.reason === reason).reduce((n, d) => n + d.count, 0);
  return { counter, total };
}

const options = { signal: 'logs' as const, queueSize: 10, batchSize: 4, scheduledDelay: 20, maxInFlight: 2 };

describe('Batcher: bounded, counted, and idle while the collector refuses', () => {
  it('sends full batches at once and the rest after the delay', async () => {
    const { t, batches } = transport(() => ExportResultCode.SUCCESS);
    const d = drops();
    const b = new Batcher({ ...options, transport: t, drops: d.counter });
    for (let i = 0; i < 4; i++) b.push(i);
    expect(batches).toEqual([]); // never inside the caller's turn
    await sleep(1);
    expect(batches).toEqual([[0, 1, 2, 3]]);
    b.push(4);
    b.push(5);
    await sleep(5);
    expect(batches).toHaveLength(1); // waits for the delay
    await sleep(40);
    expect(batches).toEqual([
      [0, 1, 2, 3],
      [4, 5],
    ]);
    expect(d.total('queue_full') + d.total('export_failed')).toBe(0);
  });

  it('drops and counts what does not fit the queue', async () => {
    const { t } = transport(() => ExportResultCode.SUCCESS);
    const d = drops();
    const b = new Batcher({ ...options, queueSize: 5, batchSize: 100, transport: t, drops: d.counter });
    for (let i = 0; i < 8; i++) b.push(i);
    expect(b.pending).toBe(5);
    expect(d.total('queue_full')).toBe(3);
    await b.shutdown();
  });

  it('after a failed export, hands nothing to the transport until the backoff passes, then recovers', async () => {
    let up = false;
    const { t, batches } = transport(() => (up ? ExportResultCode.SUCCESS : ExportResultCode.FAILED));
    const d = drops();
    const b = new Batcher({ ...options, transport: t, drops: d.counter });
    for (let i = 0; i < 4; i++) b.push(i);
    await sleep(5);
    expect(batches).toHaveLength(1);
    expect(d.total('export_failed')).toBe(4);
    // During the backoff (at least 250 ms) full batches wait in the queue: nothing is encoded.
    for (let i = 0; i < 8; i++) b.push(i);
    await sleep(100);
    expect(batches).toHaveLength(1);
    for (let i = 0; i < 4; i++) b.push(i);
    expect(d.total('queue_full')).toBe(2);
    up = true;
    await sleep(400);
    expect(batches.length).toBeGreaterThan(1);
    await b.forceFlush();
    expect(b.pending).toBe(0);
    expect(batches.flat()).toHaveLength(4 + 10);
  });

  it('shutdown sends what is queued, drops what comes after, and is safe twice', async () => {
    const { t, batches } = transport(() => ExportResultCode.SUCCESS);
    const d = drops();
    const b = new Batcher({ ...options, scheduledDelay: 60_000, transport: t, drops: d.counter });
    b.push(1);
    b.push(2);
    await Promise.all([b.shutdown(), b.shutdown()]);
    expect(batches).toEqual([[1, 2]]);
    b.push(3);
    expect(d.total('queue_full')).toBe(1);
  });

  it('probes with one batch at a time while the collector keeps failing slowly', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const batches: number[][] = [];
    const t: BatchTransport<number> = {
      export(items, done) {
        batches.push(items);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        setTimeout(
          () => {
            inFlight--;
            done({ code: ExportResultCode.FAILED });
          },
          batches.length === 1 ? 1 : 400,
        );
      },
      forceFlush: async () => {},
      shutdown: async () => {},
    };
    const d = drops();
    const b = new Batcher({ ...options, queueSize: 1000, maxInFlight: 4, transport: t, drops: d.counter });
    for (let i = 0; i < 4; i++) b.push(i);
    await sleep(20); // the first export failed: backoff
    maxInFlight = 0;
    const pusher = setInterval(() => {
      for (let i = 0; i < 4; i++) b.push(i);
    }, 10);
    await sleep(900);
    clearInterval(pusher);
    expect(batches.length).toBeGreaterThan(1);
    expect(maxInFlight).toBe(1);
  });

  it('a transport that throws loses its batch, not the pipeline', async () => {
    let calls = 0;
    const t: BatchTransport<number> = {
      export(items, done) {
        calls++;
        if (calls === 1) throw new Error('encoder bug');
        done({ code: ExportResultCode.SUCCESS });
      },
      forceFlush: async () => {},
      shutdown: async () => {},
    };
    const d = drops();
    const b = new Batcher({ ...options, transport: t, drops: d.counter });
    for (let i = 0; i < 4; i++) b.push(i);
    await sleep(5);
    expect(d.total('export_failed')).toBe(4);
    for (let i = 0; i < 4; i++) b.push(i);
    await b.forceFlush();
    expect(calls).toBe(2);
    expect(b.pending).toBe(0);
  });
});
