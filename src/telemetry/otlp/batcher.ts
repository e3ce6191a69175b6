import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { DropCounter, Signal } from '../signal.ts';

/** Where a batch goes: the OTLP exporter's delegate (serializes and sends). */
export interface BatchTransport<T> {
  export(items: T[], done: (result: ExportResult) => void): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface BatcherOptions<T> {
  signal: Signal;
  /** Items waiting at most; more are dropped and counted. */
  queueSize: number;
  batchSize: number;
  /** How long an item may wait for its batch (ms). */
  scheduledDelay: number;
  /** Exports in flight at most. */
  maxInFlight: number;
  transport: BatchTransport<T>;
  drops: DropCounter;
  /** How many items of the signal one queued item is (a relayed request holds many spans); 1 when not given. */
  weight?: (item: T) => number;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;

/**
 * Items from the request path wait in one bounded array and leave in batches: when a batch
 * is full (on the next turn of the event loop, never inside the request) or when the oldest
 * has waited `scheduledDelay`. While exports fail, nothing is encoded: after a failure the
 * next attempt waits a growing backoff (250 ms to 5 s), the queue fills, and what does not
 * fit is dropped and counted — an outage costs the request path a push and a comparison.
 */
export class Batcher<T> {
  readonly #o: BatcherOptions<T>;
  #queue: T[] = [];
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #backoff = 0;
  #retryAt = 0;
  /** After a failure, one batch goes out to probe the collector; the rest wait for its answer. */
  #probing = false;
  #stopped = false;

  constructor(options: BatcherOptions<T>) {
    this.#o = options;
  }

  /** Whether an item would be dropped now (stopped, or the queue full): then it is counted as dropped, and the caller need not build it. */
  droppedIfFull(): boolean {
    const o = this.#o;
    if (!this.#stopped && this.#queue.length < o.queueSize) return false;
    o.drops.dropped(o.signal, 'queue_full', 1);
    return true;
  }

  push(item: T): void {
    const o = this.#o;
    if (this.#stopped || this.#queue.length >= o.queueSize) {
      o.drops.dropped(o.signal, 'queue_full', o.weight === undefined ? 1 : o.weight(item));
      return;
    }
    this.#queue.push(item);
    if (this.#queue.length >= o.batchSize) {
      this.#immediate ??= setImmediate(() => {
        this.#immediate = undefined;
        this.#flush(false);
      });
    } else if (this.#timer === undefined) {
      this.#arm(o.scheduledDelay);
    }
  }

  get pending(): number {
    return this.#queue.length;
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush(false);
    }, ms);
    this.#timer.unref();
  }

  /** Sends what is queued, as far as in-flight room and (unless forced) the backoff allow. */
  #flush(force: boolean): Promise<void>[] {
    const o = this.#o;
    const sent: Promise<void>[] = [];
    const wait = this.#retryAt - Date.now();
    if (!force && (wait > 0 || this.#probing)) {
      if (wait > 0 && this.#queue.length > 0) this.#arm(wait);
      return sent;
    }
    while (this.#queue.length > 0 && this.#inFlight < o.maxInFlight) {
      const batch = this.#queue.length <= o.batchSize ? this.#queue : this.#queue.slice(0, o.batchSize);
      this.#queue = batch === this.#queue ? [] : this.#queue.slice(o.batchSize);
      const probe = !force && this.#backoff > 0;
      sent.push(this.#send(batch, probe));
      if (probe) break;
    }
    if (this.#queue.length > 0 && this.#timer === undefined) this.#arm(o.scheduledDelay);
    return sent;
  }

  #send(batch: T[], probe: boolean): Promise<void> {
    const o = this.#o;
    this.#inFlight++;
    if (probe) this.#probing = true;
    return new Promise((resolve) => {
      let answered = false;
      const done = (ok: boolean) => {
        if (answered) return;
        answered = true;
        this.#inFlight--;
        if (probe) this.#probing = false;
        if (ok) {
          this.#backoff = 0;
          this.#retryAt = 0;
        } else {
          this.#backoff = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, this.#backoff * 2));
          this.#retryAt = Date.now() + this.#backoff;
        }
        resolve();
        try {
          if (!ok) o.drops.dropped(o.signal, 'export_failed', o.weight === undefined ? batch.length : batch.reduce((n, item) => n + o.weight!(item), 0));
          if (ok && this.#queue.length >= o.batchSize) this.#flush(false);
          else if (this.#queue.length > 0 && this.#timer === undefined && !this.#stopped) this.#arm(ok ? o.scheduledDelay : this.#backoff);
        } catch {
          // Counting or logging a drop must not stall the queue.
        }
      };
      try {
        o.transport.export(batch, (result) => done(result.code === ExportResultCode.SUCCESS));
      } catch {
        // An encoder or transport that throws loses this batch, not the pipeline.
        done(false);
      }
    });
  }

  /**
   * Sends what is queued now, backoff or not, and waits for every export in flight; items
   * pushed meanwhile wait for their own turn (so a busy request path cannot keep this going).
   */
  async forceFlush(): Promise<void> {
    let budget = this.#queue.length;
    while (budget > 0 && this.#queue.length > 0) {
      const before = this.#queue.length;
      const sent = this.#flush(true);
      budget -= before - this.#queue.length;
      if (sent.length === 0)
        await this.#o.transport.forceFlush(); // in-flight room comes back
      else await Promise.all(sent);
    }
    await this.#o.transport.forceFlush();
  }

  /** Drops what arrives from now on, sends what is queued, then closes the transport; safe to call twice. */
  async shutdown(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    try {
      await this.forceFlush();
    } finally {
      await this.#o.transport.shutdown();
    }
  }
}
