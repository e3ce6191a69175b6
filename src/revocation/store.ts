import type { Principal } from '../auth/index.ts';

/**
 * Where revocations live: Redis when `stores.redis` is configured (shared by every
 * sidecar), memory otherwise (this process only).
 *
 * The rule, the same for both implementations:
 * - A token is revoked by `jti` until its `exp` plus the clock skew.
 * - A subject is revoked with a watermark `before`: its tokens whose `iat` is at or before
 *   `before` are revoked. At, not only before: `iat` has one-second resolution, and a token
 *   minted in the same second as the revocation is more likely the stolen one than a fresh
 *   login; a fresh login one second later passes. Watermarks only grow: revoking with an
 *   older `before` never un-revokes.
 * - A token without `jti` can be revoked only through its subject, and only when it carries
 *   `iat`; a token with neither cannot be revoked before it expires (require them with
 *   auth.jwt.requiredClaims: [exp, iat, jti]). API-key principals carry neither: disable
 *   the key instead.
 */
export interface RevocationStore {
  /** Revokes one token; `expiresAt` is its `exp` (unix seconds). */
  revokeToken(jti: string, expiresAt: number): Promise<Revoked>;
  /** Revokes the subject's tokens issued at or before `before` (unix seconds). */
  revokeSubject(subject: string, before: number): Promise<Revoked>;
  /** Rejects when the store cannot answer; the caller's failMode decides what that means. */
  isRevoked(p: Principal): Promise<boolean>;
}

/** What a revocation reached. */
export interface Revoked {
  /**
   * With replicas to wait for (Redis behind Sentinels): whether one had the write before
   * the answer. false: it is on the primary only, and a failover now would lose it.
   */
  replicated?: boolean;
}

export interface RevocationStoreOptions {
  /**
   * auth.jwt.clockSkew in seconds. The verifier accepts a token until `exp + clockSkew`,
   * so a jti entry that vanished at `exp` would let a revoked token back in for that long.
   * Default 30 (the schema's default).
   */
  clockSkewSeconds?: number;
  /**
   * Replicas a revocation must reach before it is answered (Redis WAIT), and how long to
   * wait for them. Redis replicates asynchronously: a write only the primary had is lost if
   * the primary dies before passing it on, and a revoked token would pass again.
   */
  replicas?: { count: number; timeoutMs: number } | undefined;
  /**
   * How long a subject watermark is kept after `before`: the longest access-token
   * lifetime of your issuers (plus the skew is added). By default watermarks never expire,
   * because the sidecar cannot know what lifetime an external issuer grants; each is one
   * small key per revoked subject.
   */
  subjectTtlSeconds?: number;
}

/** Whether `p` falls under a subject watermark (see the rule on RevocationStore). */
export function revokedBySubject(p: Principal, before: number | undefined): boolean {
  return before !== undefined && p.issuedAt !== undefined && p.issuedAt <= before;
}

export const DEFAULT_CLOCK_SKEW_SECONDS = 30;
