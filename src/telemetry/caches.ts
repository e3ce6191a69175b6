import type { Meter } from '@opentelemetry/api';
import { METRIC } from './names.ts';

/** Hit and miss counts of one of the sidecar's caches, read when metrics are collected. */
export interface CacheStats {
  readonly hits: number;
  readonly misses: number;
}

/** Caches by cache_type; a cache that does not exist (yet) answers undefined and is left out. */
export type CacheCounts = Readonly<Record<string, () => CacheStats | undefined>>;

/**
 * cache_hits_total / cache_misses_total{cache_type} from the counts each cache keeps itself.
 * One pair of instruments for every feature's caches, read only when metrics are collected:
 * a lookup pays nothing for them.
 *
 * @example
 * if (telemetry.meter !== undefined) observeCaches(telemetry.meter, { token: () => auth.tokenCacheStats() });
 */
export function observeCaches(meter: Meter, caches: CacheCounts): void {
  const observed = Object.entries(caches).map(([cacheType, stats]) => ({ attrs: { cache_type: cacheType }, stats }));
  const hits = meter.createObservableCounter(METRIC.cacheHits, { description: 'Cache hits by cache_type.' });
  const misses = meter.createObservableCounter(METRIC.cacheMisses, { description: 'Cache misses by cache_type.' });
  meter.addBatchObservableCallback(
    (r) => {
      for (const c of observed) {
        const s = c.stats();
        if (s === undefined) continue;
        r.observe(hits, s.hits, c.attrs);
        r.observe(misses, s.misses, c.attrs);
      }
    },
    [hits, misses],
  );
}
