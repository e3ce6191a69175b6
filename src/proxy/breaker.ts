export type CircuitState = 'closed' | 'open' | 'half-open';

/** What allow() grants: a normal request, or the one probe of a half-open circuit. */
export type Admission = 'request' | 'probe';

export interface CircuitBreaker {
  /** False while open, and in half-open for every request but the one probe. */
  allow(): Admission | false;
  /** Each outcome is reported with the admission it got, so a late answer cannot act as a probe. */
  success(admission: Admission): void;
  failure(admission: Admission): void;
  /** The request ended with no verdict on the upstream (the client left): frees the probe slot. */
  abandon(admission: Admission): void;
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
 * Outcomes of requests admitted before the circuit opened change nothing once it is open.
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
  const open = () => {
    openedAt = now();
    moveTo('open');
  };

  return {
    get state() {
      return state;
    },
    allow() {
      if (state === 'closed') return 'request';
      if (state === 'open') {
        if (now() - openedAt < options.openDuration) return false;
        moveTo('half-open');
      }
      if (probeInFlight) return false;
      probeInFlight = true;
      return 'probe';
    },
    success(admission) {
      if (admission === 'probe') {
        probeInFlight = false;
        failures = 0;
        moveTo('closed');
      } else if (state === 'closed') failures = 0;
    },
    failure(admission) {
      if (admission === 'probe') {
        probeInFlight = false;
        open();
      } else if (state === 'closed' && ++failures >= options.failureThreshold) open();
    },
    abandon(admission) {
      if (admission === 'probe') probeInFlight = false;
    },
  };
}
