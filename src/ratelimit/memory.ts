import { LRUCache } from 'lru-cache';
import { gcra } from './gcra.ts';
import type { RateLimitStore } from './store.ts';

/**
 * Rate limits in this process only (no stores.redis): each replica counts on its own.
 * Bounded: past `maxKeys` the least recently seen key is forgotten, which only resets
 * that caller's limit, and the least recently seen caller is the one whose limit is
 * most likely whole again anyway.
 */
export function createMemoryRateLimitStore(options: { maxKeys?: number; now?: () => number } = {}): RateLimitStore {
  const now = options.now ?? Date.now;
  const tats = new LRUCache<string, number>({ max: options.maxKeys ?? 100_000 });
  return {
    async take(key, g) {
      const t = now();
      const { result, tat } = gcra(g, t, tats.get(key));
      if (tat !== undefined) tats.set(key, tat);
      return result;
    },
  };
}
