import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDrain } from '../src/ingress/index.ts';

describe('listener drain', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('settles at once when nothing is in flight', async () => {
    const drain = createDrain();
    expect(await drain.idle()).toBe(true);
  });

  it('settles when the last request ends after draining began, not before it began', async () => {
    const drain = createDrain();
    drain.enter();
    drain.enter();
    let idle: boolean | undefined;
    void drain.idle().then((v) => (idle = v));
    drain.leave();
    await Promise.resolve();
    expect(idle).toBeUndefined();
    drain.start();
    drain.leave();
    await Promise.resolve();
    expect(idle).toBe(true);
    expect(drain.inFlight).toBe(0);
    expect(drain.draining).toBe(true);
  });

  it('waits for what else keeps the listener busy (open tunnels)', async () => {
    const tunnels = new Set(['ws']);
    const drain = createDrain(() => tunnels.size > 0);
    drain.start();
    let idle: boolean | undefined;
    void drain.idle().then((v) => (idle = v));
    await Promise.resolve();
    expect(idle).toBeUndefined();
    tunnels.clear();
    drain.check();
    await Promise.resolve();
    expect(idle).toBe(true);
  });

  it('gives up after the timeout, and a later end settles the others only', async () => {
    vi.useFakeTimers();
    const drain = createDrain();
    drain.start();
    drain.enter();
    const bounded = drain.idle(1000);
    let unbounded: boolean | undefined;
    void drain.idle().then((v) => (unbounded = v));
    vi.advanceTimersByTime(1000);
    expect(await bounded).toBe(false);
    expect(unbounded).toBeUndefined();
    drain.leave();
    await Promise.resolve();
    expect(unbounded).toBe(true);
  });
});
