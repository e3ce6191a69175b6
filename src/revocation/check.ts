import type { AuditSink } from '../audit/index.ts';
import type { Principal } from '../auth/principal.ts';
import { SidecarError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { createLogThrottle } from '../stores/index.ts';
import type { RevocationStore } from './store.ts';

export interface RevocationCheckOptions {
  /** revocation.failMode: what an unreachable store means. */
  failMode: 'open' | 'closed';
  logger: Logger;
  /** When given, every request let through unchecked (fail open) is an audit event. */
  audit?: AuditSink | undefined;
  /** At most one warning per this long while the store is failing. Default 10 s. */
  warnIntervalMs?: number;
}

/** Counters for telemetry. */
export interface RevocationCheckStats {
  /** Requests let through without a check because the store failed (failMode open). */
  failedOpen: number;
  /** Requests refused with 503 because the store failed (failMode closed). */
  failedClosed: number;
}

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
  const stats: RevocationCheckStats = { failedOpen: 0, failedClosed: 0 };
  const warnings = createLogThrottle(options.logger.child({ logger: 'agent-sidecar.revocation' }), options.warnIntervalMs);

  const check = async (p: Principal): Promise<void> => {
    let revoked: boolean;
    try {
      revoked = await store.isRevoked(p);
    } catch (err) {
      const fields = { event_type: 'revocation_store_failed', fail_mode: failMode, err: { message: (err as Error).message } };
      if (failMode === 'closed') {
        stats.failedClosed += 1;
        warnings.warn({ ...fields, failed_closed: stats.failedClosed }, 'revocation store unreachable: refusing requests (failMode closed)');
        throw new SidecarError('SIDECAR_STORE_UNAVAILABLE', { cause: err, headers: { 'retry-after': '1' } });
      }
      stats.failedOpen += 1;
      warnings.warn({ ...fields, failed_open: stats.failedOpen }, 'revocation store unreachable: letting requests through unchecked (failMode open)');
      audit?.emit({
        event_type: 'sensitive_operation',
        user_id: p.subject,
        operation: 'revocation_check_skipped',
        details: { reason: 'SIDECAR_STORE_UNAVAILABLE', token_id: p.tokenId },
      });
      return;
    }
    if (revoked) throw new SidecarError('SIDECAR_TOKEN_REVOKED', { headers: { 'www-authenticate': 'Bearer error="invalid_token", error_description="revoked"' } });
  };
  return Object.assign(check, { stats });
}
