import type { Attributes, Meter } from '@opentelemetry/api';
import { METRIC } from '../telemetry/index.ts';

export type RevocationResult = 'valid' | 'revoked' | 'store_unavailable' | 'skipped_store_unavailable';

/** Counts one check: agent_revocation_checks_total{result}. */
export type RevocationCounter = (result: RevocationResult) => void;

export function createRevocationCounter(meter: Meter): RevocationCounter {
  const counter = meter.createCounter(METRIC.revocationChecks, { description: 'Token revocation checks by result (valid|revoked|store_unavailable).' });
  // One attribute object per result: a synchronous add hashes whatever it is given.
  const attrs: Record<RevocationResult, Attributes> = {
    valid: { result: 'valid' },
    revoked: { result: 'revoked' },
    store_unavailable: { result: 'store_unavailable' },
    skipped_store_unavailable: { result: 'skipped_store_unavailable' },
  };
  return (result) => counter.add(1, attrs[result]);
}

/**
 * `check`, counted by how each call ends: it returned (valid), it threw SIDECAR_TOKEN_REVOKED
 * (revoked), it threw anything else (store_unavailable: failMode closed refused the request).
 */
export function countResults<P>(check: (p: P) => Promise<void>, count: RevocationCounter): (p: P) => Promise<void> {
  return async (p) => {
    try {
      await check(p);
    } catch (err) {
      count((err as { code?: string }).code === 'SIDECAR_TOKEN_REVOKED' ? 'revoked' : 'store_unavailable');
      throw err;
    }
    count('valid');
  };
}
