import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SidecarError } from '../src/errors/index.ts';
import { Admission } from '../src/proxy/admission.ts';

describe('upstream admission', () => {
  beforeEach(() => void vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }));
  afterEach(() => void vi.useRealTimers());

  /** A waiter that records what happened to it. */
  const waiter = (gate: Admission, streamed: boolean, log: string[], name: string) =>
    gate.wait(
      streamed,
      () => log.push(`${name} go`),
      (err: SidecarError) => log.push(`${name} ${err.code}`),
    );

  it('queues past the slots in order, and gives a freed slot to the first that may take it, bodiless before streamed', () => {
    const gate = new Admission({ slots: 2, streamedSlots: 1, queueTimeout: 1000, maxQueue: 10 });
    const log: string[] = [];
    expect(gate.tryEnter(true)).toBe(true);
    // The streamed share is taken: another upload waits while a slot is still free.
    expect(gate.tryEnter(true)).toBe(false);
    waiter(gate, true, log, 'upload');
    expect(gate.tryEnter(false)).toBe(true);
    expect(gate.tryEnter(false)).toBe(false);
    waiter(gate, false, log, 'get-1');
    waiter(gate, false, log, 'get-2');
    gate.leave(false);
    expect(log).toEqual(['get-1 go']);
    gate.leave(true);
    // The upload's share is free again, but get-2 came first among those that may take the slot.
    expect(log).toEqual(['get-1 go', 'get-2 go']);
    gate.leave(false);
    expect(log).toEqual(['get-1 go', 'get-2 go', 'upload go']);
    expect(gate.waiting).toBe(0);
  });

  it('a waiter that gives its slot back at once (circuit open) lets the queue drain in a loop, not a recursion as deep as the queue', () => {
    const gate = new Admission({ slots: 1, streamedSlots: 1, queueTimeout: 1000, maxQueue: 100_000 });
    expect(gate.tryEnter(false)).toBe(true);
    let ran = 0;
    for (let i = 0; i < 20_000; i++) {
      gate.wait(
        false,
        () => {
          ran++;
          gate.leave(false);
        },
        () => {},
      );
    }
    expect(() => gate.leave(false)).not.toThrow();
    expect(ran).toBe(20_000);
    expect([gate.active, gate.waiting]).toEqual([0, 0]);
  });

  it('refuses with SIDECAR_UPSTREAM_BUSY at the queue timeout, and at once past maxQueue or with no queue', () => {
    const gate = new Admission({ slots: 1, streamedSlots: 1, queueTimeout: 1000, maxQueue: 2 });
    const log: string[] = [];
    gate.tryEnter(false);
    waiter(gate, false, log, 'a');
    vi.advanceTimersByTime(400);
    waiter(gate, false, log, 'b');
    waiter(gate, false, log, 'c');
    expect(log).toEqual(['c SIDECAR_UPSTREAM_BUSY']);
    vi.advanceTimersByTime(600);
    expect(log).toEqual(['c SIDECAR_UPSTREAM_BUSY', 'a SIDECAR_UPSTREAM_BUSY']);
    vi.advanceTimersByTime(400);
    expect(log).toEqual(['c SIDECAR_UPSTREAM_BUSY', 'a SIDECAR_UPSTREAM_BUSY', 'b SIDECAR_UPSTREAM_BUSY']);
    const none = new Admission({ slots: 1, streamedSlots: 1, queueTimeout: 0, maxQueue: 10 });
    none.tryEnter(false);
    expect(waiter(none, false, log, 'd')).toBeUndefined();
    expect(log.at(-1)).toBe('d SIDECAR_UPSTREAM_BUSY');
  });

  it('forgets a cancelled waiter: it neither runs nor takes a place in the queue', () => {
    const gate = new Admission({ slots: 1, streamedSlots: 1, queueTimeout: 1000, maxQueue: 1 });
    const log: string[] = [];
    gate.tryEnter(false);
    gate.cancel(waiter(gate, false, log, 'gone')!);
    waiter(gate, false, log, 'next');
    gate.leave(false);
    vi.advanceTimersByTime(2000);
    expect(log).toEqual(['next go']);
    expect(gate.active).toBe(1);
  });
});
