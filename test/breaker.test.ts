import { describe, expect, it } from 'vitest';
import { createCircuitBreaker } from '../src/proxy/breaker.ts';

describe('circuit breaker', () => {
  const make = () => {
    let t = 0;
    const breaker = createCircuitBreaker({ failureThreshold: 2, openDuration: 100, now: () => t });
    return { breaker, advance: (ms: number) => (t += ms) };
  };

  it('opens after consecutive failures and admits exactly one probe', () => {
    const { breaker, advance } = make();
    expect(breaker.allow()).toBe('request');
    breaker.failure('request');
    breaker.failure('request');
    expect(breaker.state).toBe('open');
    expect(breaker.allow()).toBe(false);
    advance(100);
    expect(breaker.allow()).toBe('probe');
    expect(breaker.allow()).toBe(false);
    breaker.success('probe');
    expect(breaker.state).toBe('closed');
  });

  it('ignores late outcomes of requests admitted before it opened', () => {
    const { breaker, advance } = make();
    const early = breaker.allow();
    expect(early).toBe('request');
    breaker.failure('request');
    breaker.failure('request');
    advance(100);
    expect(breaker.allow()).toBe('probe');
    // The early request's client leaves, or it succeeds late: neither frees the probe slot or closes the circuit.
    breaker.abandon('request');
    expect(breaker.allow()).toBe(false);
    breaker.success('request');
    expect(breaker.state).toBe('half-open');
    breaker.failure('probe');
    expect(breaker.state).toBe('open');
  });

  it('a success in the closed state resets the failure count', () => {
    const { breaker } = make();
    breaker.failure('request');
    breaker.success('request');
    breaker.failure('request');
    expect(breaker.state).toBe('closed');
  });
});
