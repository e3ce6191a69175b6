import type { Principal } from '../auth/index.ts';
import { DEFAULT_CLOCK_SKEW_SECONDS, revokedBySubject, type RevocationStore, type RevocationStoreOptions } from './store.ts';

const SWEEP_MIN = 1024;

/**
 * Revocations in this process only (no stores.redis): lost on restart and not seen by
 * other replicas. Deliberately not an LRU: evicting an entry would silently un-revoke a
 * token. Entries go when they expire instead; expired ones are swept whenever the map
 * has doubled since the last sweep, which keeps the cost amortised O(1).
 */
export function createMemoryRevocationStore(options: RevocationStoreOptions & { now?: () => number } = {}): RevocationStore {
  const skewMs = (options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS) * 1000;
  const subjectTtlMs = options.subjectTtlSeconds === undefined ? Number.POSITIVE_INFINITY : options.subjectTtlSeconds * 1000 + skewMs;
  const now = options.now ?? Date.now;
  // jti -> unix ms after which the entry is gone.
  const tokens = new Map<string, number>();
  const subjects = new Map<string, { before: number; until: number }>();
  let sweepAt = SWEEP_MIN;

  const sweep = () => {
    if (tokens.size + subjects.size < sweepAt) return;
    const t = now();
    for (const [k, until] of tokens) if (until <= t) tokens.delete(k);
    for (const [k, v] of subjects) if (v.until <= t) subjects.delete(k);
    sweepAt = Math.max(SWEEP_MIN, 2 * (tokens.size + subjects.size));
  };

  return {
    async revokeToken(jti, expiresAt) {
      const until = expiresAt * 1000 + skewMs;
      if (until <= now()) return {};
      tokens.set(jti, Math.max(until, tokens.get(jti) ?? 0));
      sweep();
      return {};
    },
    async revokeSubject(subject, before) {
      const prev = subjects.get(subject);
      const top = prev !== undefined && prev.until > now() ? Math.max(prev.before, before) : before;
      subjects.set(subject, { before: top, until: top * 1000 + subjectTtlMs });
      sweep();
      return {};
    },
    async isRevoked(p: Principal) {
      const t = now();
      if (p.tokenId !== undefined) {
        const until = tokens.get(p.tokenId);
        if (until !== undefined && until > t) return true;
      }
      if (p.issuedAt === undefined) return false;
      const entry = subjects.get(p.subject);
      return entry !== undefined && entry.until > t && revokedBySubject(p, entry.before);
    },
  };
}
