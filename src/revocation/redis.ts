import { isCluster, type StoreClient } from '../stores/index.ts';
import type { Principal } from '../auth/index.ts';
import { DEFAULT_CLOCK_SKEW_SECONDS, revokedBySubject, type RevocationStore, type RevocationStoreOptions, type Revoked } from './store.ts';

// Keeps the larger watermark, atomically: two admins revoking at once must not let the
// older `before` overwrite the newer one.
const RAISE_WATERMARK = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '')
local before = tonumber(ARGV[1])
if cur == nil or before > cur then
  cur = before
  redis.call('SET', KEYS[1], ARGV[1])
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('EXPIREAT', KEYS[1], cur + ttl) else redis.call('PERSIST', KEYS[1]) end
return cur
`;

type WatermarkRedis = StoreClient & { revocationRaiseWatermark(key: string, before: number, ttl: number): Promise<number> };

/** Key names under stores.redis.keyPrefix (ioredis applies the prefix). */
export const revocationKeys = {
  token: (jti: string) => `revoked:jti:${jti}`,
  subject: (subject: string) => `revoked:sub:${subject}`,
};

/**
 * Revocations in Redis, shared by every sidecar using it. A check costs one round trip
 * (MGET of the jti key and the subject key), and none for a principal that has neither
 * `jti` nor `iat`. Needs Redis 6.2 or later (SET … EXAT).
 */
export function createRedisRevocationStore(redis: StoreClient, options: RevocationStoreOptions = {}): RevocationStore {
  const skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  const subjectTtl = options.subjectTtlSeconds === undefined ? 0 : options.subjectTtlSeconds + skew;
  if (!('revocationRaiseWatermark' in redis)) redis.defineCommand('revocationRaiseWatermark', { lua: RAISE_WATERMARK, numberOfKeys: 1 });
  const r = redis as WatermarkRedis;
  const replicas = options.replicas;
  // Known once: every check of a request asks it.
  const cluster = isCluster(r);
  // WAIT on the connection that wrote: the primary answers once `count` replicas have it.
  const replicated = async (): Promise<Revoked> => {
    if (replicas === undefined || replicas.count <= 0 || cluster) return {};
    const acked = Number(await r.call('WAIT', String(replicas.count), String(replicas.timeoutMs)));
    return { replicated: acked >= replicas.count };
  };
  return {
    async revokeToken(jti, expiresAt) {
      // An `exp` already past the skew needs no entry: Redis drops a key whose EXAT is past.
      await r.set(revocationKeys.token(jti), String(expiresAt), 'EXAT', expiresAt + skew);
      return replicated();
    },
    async revokeSubject(subject, before) {
      await r.revocationRaiseWatermark(revocationKeys.subject(subject), before, subjectTtl);
      return replicated();
    },
    async isRevoked(p: Principal) {
      const byToken = p.tokenId !== undefined;
      const bySubject = p.issuedAt !== undefined;
      if (!byToken && !bySubject) return false;
      const keys: string[] = [];
      if (byToken) keys.push(revocationKeys.token(p.tokenId!));
      if (bySubject) keys.push(revocationKeys.subject(p.subject));
      // One MGET; a cluster keeps the two keys in different slots, so there: two GETs at once.
      const values = cluster ? await Promise.all(keys.map((k) => r.get(k))) : await r.mget(...keys);
      if (byToken && values[0] != null) return true;
      const watermark = bySubject ? values[keys.length - 1] : null;
      return revokedBySubject(p, watermark == null ? undefined : Number(watermark));
    },
  };
}
