/**
 * A listener's shutdown bookkeeping: requests in flight, whether draining began, and who waits
 * for the last one to end. Shared by the ingress and the egress listener, so that both count,
 * drain and settle alike.
 */
export interface Drain {
  readonly inFlight: number;
  readonly draining: boolean;
  /** Shutdown began: from now on, the last request to end settles idle(). */
  start(): void;
  enter(): void;
  leave(): void;
  /** Something else idle() waits for ended (a WebSocket tunnel). */
  check(): void;
  /**
   * Resolves true once nothing is in flight (nor busy, see createDrain), or false once
   * `timeout` ms passed first; without a timeout it waits for as long as that takes.
   */
  idle(timeout?: number): Promise<boolean>;
}

/**
 * @param busy what else keeps the listener from being idle, e.g. `() => tunnels.size > 0`.
 *
 * @example
 * const drain = createDrain(() => upgrader.open.size > 0);
 * server.on('request', (req, res) => { drain.enter(); res.once('close', () => drain.leave()); … });
 * drain.start(); server.close();
 * if (!(await drain.idle(gracePeriod))) server.closeAllConnections();
 */
export function createDrain(busy?: () => boolean): Drain {
  let inFlight = 0;
  let draining = false;
  let waiters: Array<(idle: boolean) => void> = [];

  const settle = () => {
    if (inFlight > 0 || busy?.() === true || waiters.length === 0) return;
    const settled = waiters;
    waiters = [];
    for (const w of settled) w(true);
  };

  return {
    get inFlight() {
      return inFlight;
    },
    get draining() {
      return draining;
    },
    start() {
      draining = true;
    },
    enter() {
      inFlight++;
    },
    leave() {
      inFlight--;
      // Before shutdown, nobody waits: nothing to settle on the hot path.
      if (draining) settle();
    },
    check() {
      if (draining) settle();
    },
    idle(timeout) {
      return new Promise<boolean>((resolve) => {
        if (timeout === undefined) {
          waiters.push(resolve);
        } else {
          // The timer must not keep a process alive that has nothing else to do.
          const timer = setTimeout(() => {
            waiters = waiters.filter((w) => w !== done);
            resolve(false);
          }, timeout).unref();
          const done = (idle: boolean) => {
            clearTimeout(timer);
            resolve(idle);
          };
          waiters.push(done);
        }
        settle();
      });
    },
  };
}
