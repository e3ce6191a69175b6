import { SidecarError } from '../errors/index.ts';
import { componentLogger, type Logger } from '../log/index.ts';
import { createLogThrottle } from './throttle.ts';

export interface FailModeStats {
  /** Requests let through because the store failed (failMode open). */
  failedOpen: number;
  /** Requests refused with 503 because the store failed (failMode closed). */
  failedClosed: number;
}

export interface StoreFailureHandler {
  readonly stats: FailModeStats;
  /**
   * A store call failed: with failMode closed this throws SIDECAR_STORE_UNAVAILABLE (503);
   * with failMode open it returns, and the caller lets the request through. Both are
   * counted and warned about at most once per interval.
   */
  failed(err: unknown): void;
}

/** What revocation and rate limiting do when Redis is unreachable: one policy, one place. */
export function createStoreFailureHandler(options: {
  /** For log lines: 'revocation', 'ratelimit'. */
  store: string;
  /** What failing open means, for the warning: "requests pass unlimited". */
  openMeans: string;
  failMode: 'open' | 'closed';
  logger: Logger;
  warnIntervalMs?: number | undefined;
}): StoreFailureHandler {
  const { store, openMeans, failMode } = options;
  const stats: FailModeStats = { failedOpen: 0, failedClosed: 0 };
  const warnings = createLogThrottle(componentLogger(options.logger, `agent-sidecar.${store}`), options.warnIntervalMs);
  return {
    stats,
    failed(err) {
      const fields = { event_type: `${store}_store_failed`, fail_mode: failMode, err: { message: (err as Error).message } };
      if (failMode === 'closed') {
        stats.failedClosed += 1;
        warnings.warn({ ...fields, failed_closed: stats.failedClosed }, `${store} store unreachable: refusing requests (failMode closed)`);
        throw new SidecarError('SIDECAR_STORE_UNAVAILABLE', { cause: err, headers: { 'retry-after': '1' } });
      }
      stats.failedOpen += 1;
      warnings.warn({ ...fields, failed_open: stats.failedOpen }, `${store} store unreachable: ${openMeans} (failMode open)`);
    },
  };
}
