import type { Logger } from '../log/index.ts';

/** Logs a warning at most once per interval, with the count of the ones it held back. */
export interface LogThrottle {
  warn(fields: Record<string, unknown>, message: string): void;
  /** Warnings held back since the last one logged. */
  readonly suppressed: number;
}

/**
 * During a store outage every request fails the same way; one line per interval says as
 * much as ten thousand, and keeps the log pipeline from becoming the next outage.
 */
export function createLogThrottle(logger: Logger, intervalMs = 10_000, now: () => number = Date.now): LogThrottle {
  let last = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return {
    warn(fields, message) {
      const t = now();
      if (t - last < intervalMs) {
        suppressed += 1;
        return;
      }
      logger.warn({ ...fields, suppressed }, message);
      last = t;
      suppressed = 0;
    },
    get suppressed() {
      return suppressed;
    },
  };
}
