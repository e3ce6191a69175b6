import { SidecarError } from '../errors/index.ts';

export interface AdmissionOptions {
  /** upstream.connections: requests to the upstream at once (one per connection, no pipelining). */
  slots: number;
  /** Of those, requests whose body streams from the client (upstream.streamedBodyShare). */
  streamedSlots: number;
  /** upstream.queueTimeout: the longest wait for a slot; 0: none. */
  queueTimeout: number;
  /** upstream.maxQueue: requests waiting at most; 0: none. */
  maxQueue: number;
}

/** A request waiting for a slot; `cancel` it when its client leaves. */
export interface Waiter {
  readonly streamed: boolean;
  readonly deadline: number;
  go: (() => void) | undefined;
  refuse: ((err: SidecarError) => void) | undefined;
}

/**
 * Admission to the upstream pool. undici's Pool queues without bound or deadline: when slow
 * requests held every connection, everything else waited for ever. Here a request takes a
 * slot (one per connection) before it is dispatched, or waits for one in FIFO order for at
 * most queueTimeout, behind at most maxQueue others; past either, 503 SIDECAR_UPSTREAM_BUSY.
 * Requests whose body streams from the client hold at most streamedSlots of the slots, so
 * slow uploads leave the rest to everything else; bodiless and buffered requests go first
 * when a slot frees.
 *
 * The fast path (a slot is free) is two comparisons and an increment; waiting costs one
 * object, and one timer serves every waiter (deadlines in a FIFO queue are in order).
 */
export class Admission {
  readonly #o: AdmissionOptions;
  #active = 0;
  #streamed = 0;
  /** Waiting requests, in arrival order, per kind; cancelled ones are skipped when reached. */
  readonly #plain = new Fifo();
  readonly #streaming = new Fifo();
  #waiting = 0;
  // Read by `??=` and by the static expiry (the rule misses both).
  // eslint-disable-next-line no-unused-private-class-members
  #timer: NodeJS.Timeout | undefined;

  constructor(o: AdmissionOptions) {
    this.#o = o;
  }

  /** Requests holding a slot, and waiting for one (for tests and diagnostics). */
  get active(): number {
    return this.#active;
  }
  get waiting(): number {
    return this.#waiting;
  }

  /** Takes a slot if one is free for this kind of request; the caller must leave() once done. */
  tryEnter(streamed: boolean): boolean {
    if (this.#active >= this.#o.slots || (streamed && this.#streamed >= this.#o.streamedSlots)) return false;
    this.#active++;
    if (streamed) this.#streamed++;
    return true;
  }

  /**
   * Queues a request that found no slot: `go` once it holds one (then leave() when done), or
   * `refuse` with SIDECAR_UPSTREAM_BUSY. Neither is called after cancel().
   */
  wait(streamed: boolean, go: () => void, refuse: (err: SidecarError) => void): Waiter | undefined {
    if (this.#o.queueTimeout === 0 || this.#waiting >= this.#o.maxQueue) {
      refuse(busy());
      return undefined;
    }
    const w: Waiter = { streamed, deadline: performance.now() + this.#o.queueTimeout, go, refuse };
    (streamed ? this.#streaming : this.#plain).push(w);
    this.#waiting++;
    this.#timer ??= setTimeout(Admission.#expire, this.#o.queueTimeout, this).unref();
    return w;
  }

  /** The client left while its request waited. */
  cancel(w: Waiter): void {
    if (w.go === undefined) return;
    w.go = undefined;
    w.refuse = undefined;
    this.#waiting--;
  }

  /** Gives a slot back; the next waiter that may take it gets it. */
  leave(streamed: boolean): void {
    this.#active--;
    if (streamed) this.#streamed--;
    // A waiter that gives its slot back at once (circuit open) does so inside the loop below:
    // the loop goes on, rather than recursing as deep as the queue is long.
    if (this.#waiting > 0 && !this.#admitting) this.#admit();
  }

  #admitting = false;

  #admit(): void {
    this.#admitting = true;
    try {
      while (this.#active < this.#o.slots && this.#waiting > 0) {
        let w = this.#plain.shift();
        if (w === undefined && this.#streamed < this.#o.streamedSlots) w = this.#streaming.shift();
        if (w === undefined) return;
        const go = w.go!;
        this.#waiting--;
        w.go = undefined;
        w.refuse = undefined;
        this.#active++;
        if (w.streamed) this.#streamed++;
        go();
      }
    } finally {
      this.#admitting = false;
    }
  }

  /** Refuses every waiter past its deadline, then waits for the next deadline. */
  static #expire(self: Admission): void {
    self.#timer = undefined;
    const now = performance.now();
    let next = Infinity;
    for (const q of [self.#plain, self.#streaming]) {
      for (let w = q.peek(); w !== undefined; w = q.peek()) {
        if (w.deadline > now) {
          next = Math.min(next, w.deadline);
          break;
        }
        q.shift();
        const refuse = w.refuse!;
        self.cancel(w);
        refuse(busy());
      }
    }
    if (next !== Infinity) self.#timer = setTimeout(Admission.#expire, Math.max(1, Math.ceil(next - now)), self).unref();
  }
}

function busy(): SidecarError {
  return new SidecarError('SIDECAR_UPSTREAM_BUSY', { headers: { 'retry-after': '1' } });
}

/** A FIFO queue of waiters that skips cancelled ones; shift and push are O(1) amortized. */
class Fifo {
  #items: Waiter[] = [];
  #head = 0;
  push(w: Waiter): void {
    this.#items.push(w);
  }
  /** The first waiter still waiting, or undefined. */
  peek(): Waiter | undefined {
    while (this.#head < this.#items.length && this.#items[this.#head]!.go === undefined) this.#head++;
    this.#compact();
    return this.#items[this.#head];
  }
  shift(): Waiter | undefined {
    const w = this.peek();
    if (w !== undefined) this.#head++;
    return w;
  }
  #compact(): void {
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}
