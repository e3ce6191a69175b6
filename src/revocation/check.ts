import type { Meter } from '@opentelemetry/api';
import type { AuditSink } from '../audit/index.ts';
import type { Principal } from '../auth/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { createStoreFailureHandler, type FailModeStats } from '../stores/index.ts';
import type { RevocationStore } from './store.ts';
import { countResults, createRevocationCounter } from './telemetry.ts';

export interface RevocationCheckOptions {
  /** revocation.failMode: what an unreachable store means. */
  failMode: 'open' | 'closed';
  logger: Logger;
  /** When given, every request let through unchecked (fail open) is an audit event. */
  audit?: AuditSink | undefined;
  /** At most one warning per this long while the store is failing. Default 10 s. */
  warnIntervalMs?: number;
  /** When given (telemetry on), every check is counted: agent_revocation_checks_total{result}. */
  meter?: Meter | undefined;
}

/** Counters for telemetry: requests let through unchecked, or refused, because the store failed. */
export type RevocationCheckStats = FailModeStats;

export type RevocationCheck = ((p: Principal) => Promise<void>) & { readonly stats: RevocationCheckStats };

/**
 * The per-request revocation check, run after the token verified.
 * Throws SIDECAR_TOKEN_REVOKED (401) for a revoked token, and when the store fails either
 * SIDECAR_STORE_UNAVAILABLE (503, failMode closed: a revoked token must not get through
 * an outage) or nothing (failMode open: counted, warned once per interval, audited).
 *
 * @example
 * const checkRevocation = createRevocationCheck(store, { failMode: config.revocation.failMode, logger, audit });
 * await checkRevocation(principal);
 */
export function createRevocationCheck(store: RevocationStore, options: RevocationCheckOptions): RevocationCheck {
  const { failMode, audit } = options;
  const count = options.meter === undefined ? undefined : createRevocationCounter(options.meter);
  const failure = createStoreFailureHandler({
    store: 'revocation',
    openMeans: 'letting requests through unchecked',
    failMode,
    logger: options.logger,
    warnIntervalMs: options.warnIntervalMs,
  });

  const check = async (p: Principal): Promise<void> => {
    let revoked: boolean;
    try {
      revoked = await store.isRevoked(p);
    } catch (err) {
      failure.failed(err);
      audit?.emit({
        event_type: 'sensitive_operation',
        user_id: p.subject,
        operation: 'revocation_check_skipped',
        details: { reason: 'SIDECAR_STORE_UNAVAILABLE', token_id: p.tokenId },
      });
      // The call still returns, so it is counted as valid too: skipped says how many of those went unchecked.
      count?.('skipped_store_unavailable');
      return;
    }
    if (revoked)
      throw new SidecarError('SIDECAR_TOKEN_REVOKED', { headers: { 'www-authenticate': 'Bearer error="invalid_token", error_description="revoked"' } });
  };
  return Object.assign(count === undefined ? check : countResults(check, count), { stats: failure.stats });
}
