import { Worker } from 'node:worker_threads';
import type { Attributes } from '@opentelemetry/api';
import type { SidecarConfig } from '../../config/index.ts';
import type { ExportConfig } from '../pipeline.ts';
import type { DropCounter, DropReason, Signal } from '../signal.ts';
import type { RelayCore } from './index.ts';
import { MalformedOtlp, type RelaySignal } from './rewrite.ts';

// The relay's rewrite, queues and export in a worker thread: the proxying thread only reads a
// request, hands its bytes over (moved, not copied) and answers when the worker says how many
// of its items were dropped. A 100-span export request costs the rewrite about half a
// millisecond (npm run bench:micro:relay); on the proxying thread every request arriving
// meanwhile waits for it.

/** What the worker is started with: plain data (structured clone), the protection rebuilt from it. */
export interface RelayThreadData {
  [RELAY_THREAD]: true;
  /** The whole configuration: the worker builds the telemetry rule set (and its keys) from it, as the sidecar does. */
  config: Readonly<SidecarConfig>;
  queueBytes: number;
  exportConfig: Pick<ExportConfig, 'endpoints' | 'headers'> & Record<'traces' | 'metrics' | 'logs', { exportTimeout: number }>;
  extra: Attributes;
}

export type ToWorker = { t: 'accept'; id: number; signal: RelaySignal; body: Uint8Array } | { t: 'flush' | 'shutdown'; id: number };
export type FromWorker =
  | { t: 'ready' }
  | { t: 'failed'; message: string }
  | { t: 'accepted'; id: number; rejected: number }
  | { t: 'malformed'; id: number; message: string }
  | { t: 'error'; id: number; message: string }
  | { t: 'done'; id: number }
  | { t: 'drop'; signal: Signal; reason: DropReason; count: number };

/** Where the worker's code is: a module beside this one (sources), a file beside the bundle, or the executable's asset. */
export type WorkerSource = { file: string | URL } | { code: string };

/** The worker bundle's name beside the CLI bundle, and as an asset of the single executable (scripts/bundle.ts, scripts/build-sea.ts). */
export const WORKER_BUNDLE = 'relay-worker.cjs';

/** The mark in workerData that the worker's module looks for before it starts (src/relay-thread.ts). */
export const RELAY_THREAD = 'agentSidecarRelayThread';

export interface RelayThread extends RelayCore {
  /** Resolves once the worker has built its rule set and exporters; rejects with why it could not. */
  readonly ready: Promise<void>;
}

/**
 * Starts the relay's worker. Requests accepted before it is ready wait for it; if it dies, they
 * and every later one are refused (SIDECAR_INTERNAL), and `onExit` says why.
 */
export function startRelayThread(
  source: WorkerSource,
  data: Omit<RelayThreadData, typeof RELAY_THREAD>,
  drops: DropCounter,
  onExit: (err: Error) => void,
): RelayThread {
  const workerData: RelayThreadData = { ...data, [RELAY_THREAD]: true };
  const worker =
    'code' in source ? new Worker(source.code, { eval: true, workerData, env: process.env }) : new Worker(source.file, { workerData, env: process.env });
  // The proxying thread's exit is never held by the worker: shutdown() ends it.
  worker.unref();
  let next = 0;
  let dead: Error | undefined;
  const waiting = new Map<number, { resolve: (v: number) => void; reject: (e: Error) => void }>();
  let markReady!: () => void;
  let markFailed!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    markFailed = reject;
  });
  // Nobody may be waiting on ready: its rejection is reported through onExit.
  ready.catch(() => {});
  const die = (err: Error) => {
    if (dead !== undefined) return;
    dead = err;
    markFailed(err);
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
    onExit(err);
  };
  worker.on('message', (m: FromWorker) => {
    if (m.t === 'ready') return markReady();
    if (m.t === 'failed') return die(new Error(m.message));
    if (m.t === 'drop') return drops.dropped(m.signal, m.reason, m.count);
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if (m.t === 'accepted') w.resolve(m.rejected);
    else if (m.t === 'done') w.resolve(0);
    else if (m.t === 'malformed') w.reject(new MalformedOtlp(m.message));
    else w.reject(new Error(m.message));
  });
  worker.on('error', (err) => die(err));
  worker.on('exit', (code) => die(new Error(`the relay's worker thread exited (code ${code})`)));

  const call = (msg: ToWorker, transfer: ArrayBuffer[] = []): Promise<number> => {
    if (dead !== undefined) return Promise.reject(dead);
    return new Promise((resolve, reject) => {
      waiting.set(msg.id, { resolve, reject });
      worker.postMessage(msg, transfer);
    });
  };

  return {
    ready,
    accept(signal, body) {
      // Moved, not copied: a body that is a view of a larger buffer is copied out first.
      const own = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : Uint8Array.prototype.slice.call(body);
      return call({ t: 'accept', id: next++, signal, body: own }, [own.buffer as ArrayBuffer]);
    },
    async forceFlush() {
      await call({ t: 'flush', id: next++ }).catch(() => {});
    },
    async shutdown() {
      await call({ t: 'shutdown', id: next++ }).catch(() => {});
      await worker.terminate();
    },
  };
}
