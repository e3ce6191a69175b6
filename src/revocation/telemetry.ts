import type { Meter } from '@opentelemetry/api';
import { METRIC, tallyCounter, type Tally } from '../telemetry/index.ts';

export type RevocationResult = 'valid' | 'revoked' | 'store_unavailable' | 'skipped_store_unavailable';

/** Counts one check: agent_revocation_checks_total{result}. */
export type RevocationCounter = (result: RevocationResult) => void;

export function createRevocationCounter(meter: Meter): RevocationCounter {
  const counts = tallyCounter(meter, METRIC.revocationChecks, 'Token revocation checks by result (valid|revoked|store_unavailable).');
  // One cell per result, made on its first check (a result never seen is not exported).
  const cells = new Map<RevocationResult, Tally>();
  return (result) => {
    let c = cells.get(result);
    if (c === undefined) cells.set(result, (c = counts.cell(result, () => ({ result }))));
    c.n++;
  };
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
