export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreaker {
  /** False while open, and in half-open for every request but the one probe. */
  allow(): boolean;
  success(): void;
  failure(): void;
  /** The request ended with no verdict on the upstream (the client left): frees the probe slot. */
  abandon(): void;
  readonly state: CircuitState;
}

export interface CircuitBreakerOptions {
  failureThreshold: number;
  openDuration: number;
  now?: () => number;
  onStateChange?: (state: CircuitState) => void;
}

/**
 * Consecutive-failure circuit breaker: after `failureThreshold` failures in a row it opens
 * for `openDuration`, then lets one probe through; the probe's outcome closes or reopens it.
 */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  const now = options.now ?? Date.now;
  let state: CircuitState = 'closed';
  let failures = 0;
  let openedAt = 0;
  let probeInFlight = false;

  const moveTo = (next: CircuitState) => {
    if (state === next) return;
    state = next;
    options.onStateChange?.(next);
  };

  return {
    get state() {
      return state;
    },
    allow() {
      if (state === 'closed') return true;
      if (state === 'open') {
        if (now() - openedAt < options.openDuration) return false;
        moveTo('half-open');
      }
      if (probeInFlight) return false;
      probeInFlight = true;
      return true;
    },
    success() {
      failures = 0;
      probeInFlight = false;
      moveTo('closed');
    },
    abandon() {
      probeInFlight = false;
    },
    failure() {
      probeInFlight = false;
      failures += 1;
      if (state === 'half-open' || failures >= options.failureThreshold) {
        openedAt = now();
        moveTo('open');
      }
    },
  };
}
