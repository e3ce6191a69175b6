import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Principal } from './principal.ts';

/** Verified tokens, keyed by their SHA-256, each kept no longer than its `exp`. */
export interface TokenCache {
  get(token: string): Principal | undefined;
  set(token: string, principal: Principal): void;
  readonly size: number;
  /** Lookups that found a live entry, and those that did not (for cache_hits / cache_misses). */
  readonly stats: { readonly hits: number; readonly misses: number };
}

interface Entry {
  principal: Principal;
  until: number;
}

// Even a long-lived token is re-verified this often, so that a key withdrawn from the
// JWKS (or a token without exp, when exp is not required) stops working within minutes.
const MAX_TTL_MS = 5 * 60_000;

/**
 * A bounded LRU of verified tokens (lru-cache). Keys are hashes, so the cache holds no
 * bearer credential. `now` drives both lru-cache's TTL clock and our own expiry check,
 * which makes the bound exact even with ttlResolution caching and lets tests fake time.
 * With `max` 0 the cache is off.
 */
export function createTokenCache(max: number, now: () => number): TokenCache {
  if (max === 0) return { get: () => undefined, set: () => {}, size: 0, stats: { hits: 0, misses: 0 } };
  const stats = { hits: 0, misses: 0 };
  const lru = new LRUCache<string, Entry>({ max, perf: { now }, ttlResolution: 0, ttlAutopurge: false });
  // One-shot crypto.hash: no Hash object per request.
  const keyOf = (token: string) => hash('sha256', token, 'base64url');
  return {
    get(token) {
      const key = keyOf(token);
      const entry = lru.get(key);
      if (entry === undefined) {
        stats.misses++;
        return undefined;
      }
      if (entry.until <= now()) {
        lru.delete(key);
        stats.misses++;
        return undefined;
      }
      stats.hits++;
      return entry.principal;
    },
    set(token, principal) {
      const at = now();
      const until = Math.min(principal.expiresAt === undefined ? Infinity : principal.expiresAt * 1000, at + MAX_TTL_MS);
      if (until <= at) return;
      lru.set(keyOf(token), { principal, until }, { ttl: until - at });
    },
    get size() {
      return lru.size;
    },
    stats,
  };
}
