import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import type { ReadinessCheck } from '../core/index.ts';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { componentLogger, type Logger } from '../log/index.ts';
import { createLogThrottle } from './throttle.ts';

export type RedisStoreConfig = NonNullable<SidecarConfig['stores']['redis']>;

/**
 * ioredis, loaded only when Redis is configured. Loading it defines a String subclass
 * (its RESP3 VerbatimString), and once any exists, V8 (Node 24) runs every
 * String.prototype.charCodeAt loop of the process several times slower (npm run
 * bench:micro:strings measures it). A sidecar without Redis never pays that.
 */
export function loadRedisClient(): typeof Redis {
  // In the single executable (a CommonJS bundle) `require` is the bundle's own, which holds
  // ioredis and still loads it only on this call; from ESM it is created here.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a synchronous, lazy load; see above
  const ioredis = (typeof require === 'function' ? require('ioredis') : createRequire(import.meta.url)('ioredis')) as typeof import('ioredis');
  return ioredis.Redis;
}

const RETRY_BASE_MS = 100;
const RETRY_CAP_MS = 2_000;

/*
 * The key prefix rule, in one place. Key names in this code base (apikey:<id>,
 * revoked:jti:<jti>, ratelimit:<key>, budget:<key>) never carry stores.redis.keyPrefix:
 * every client, the sidecar's and the CLI's, comes from createRedis or connectRedis,
 * which hand the prefix to ioredis (keyPrefix), and ioredis puts it in front of every
 * key of every command. The one thing ioredis does not prefix is a SCAN pattern, and
 * the keys SCAN returns carry the prefix: scanKeys deals with both. So what one side
 * writes, the other reads, whoever is on either side.
 */
function clientOptions(config: RedisStoreConfig): RedisOptions {
  return {
    keyPrefix: config.keyPrefix,
    connectTimeout: config.connectTimeout,
    commandTimeout: config.commandTimeout,
    enableOfflineQueue: false,
    // A command caught by a dropped connection fails instead of being resent later:
    // a revocation check answered after the client gave up is worthless.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectionName: 'agent-sidecar',
  };
}

/**
 * One ioredis client for every store (revocation, rate limits, API keys).
 *
 * Tuned to fail fast: with the offline queue off, a command sent while Redis is down is
 * rejected at once instead of waiting for a reconnect, so each caller's failMode decides
 * (deny with 503, or let through) within `commandTimeout` at worst. Reconnection never
 * gives up: the backoff is capped, so a restarted Redis is used again within ~2 s.
 *
 * @example
 * const redis = createRedis(config.stores.redis, logger);
 * const revocations = createRedisRevocationStore(redis, { clockSkewSeconds: 30 });
 */
export function createRedis(config: RedisStoreConfig, logger: Logger, errorLogIntervalMs = 10_000, options: { lazy?: boolean } = {}): Redis {
  const log = componentLogger(logger, 'agent-sidecar.redis');
  const RedisClient = loadRedisClient();
  const redis = new RedisClient(config.url, {
    ...clientOptions(config),
    // Lazy only for validate, which builds the client to check its settings and never uses it.
    lazyConnect: options.lazy === true,
    // Capped exponential backoff with jitter, so that a fleet of sidecars does not
    // reconnect in lockstep after a Redis restart.
    retryStrategy: (times) => Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(times, 5)) + Math.floor(Math.random() * 100),
  });
  const errors = createLogThrottle(log, errorLogIntervalMs);
  let down = false;
  redis.on('error', (err: Error & { code?: string }) => {
    down = true;
    errors.warn({ event_type: 'store_error', store: 'redis', err: { message: err.message, code: err.code } }, `redis: ${err.message}`);
  });
  redis.on('ready', () => {
    if (down) log.info({ event_type: 'store_recovered', store: 'redis' }, 'redis: connection ready again');
    down = false;
  });
  return redis;
}

/**
 * Resolves once the client is connected (commands fail immediately before that, the
 * offline queue being off); rejects after `timeoutMs`. For the CLI and for tests; the
 * sidecar itself starts without waiting and lets readiness report the store.
 */
export function waitForRedis(redis: Redis, timeoutMs = 5_000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  // Not events.once: it rejects on the first 'error', and a reconnecting client emits
  // several of those before it is ready.
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`redis is not reachable after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

/** Readiness: PING answered within `timeoutMs`. */
export function redisReadiness(redis: Redis, timeoutMs = 1_000): ReadinessCheck {
  return {
    name: 'redis',
    async check() {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`redis did not answer PING within ${timeoutMs} ms`), timeoutMs);
        timer.unref();
      });
      try {
        const answer = await Promise.race([redis.ping().catch((err: Error) => `redis unreachable: ${err.message}`), timeout]);
        return answer === 'PONG' ? undefined : answer;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * A client for one command line run (keys, revoke): the same key prefix rule as the
 * sidecar's, connected before it is returned, and no reconnecting. A Redis that cannot
 * be reached rejects with SIDECAR_STORE_UNAVAILABLE naming the cause (ECONNREFUSED, a
 * refused password), the URL's password left out.
 */
export async function connectRedis(config: RedisStoreConfig): Promise<Redis> {
  const RedisClient = loadRedisClient();
  const redis = new RedisClient(config.url, { ...clientOptions(config), lazyConnect: true, retryStrategy: () => null });
  // ioredis reports the real cause as an event, then rejects with "Connection is closed".
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => (lastError = err));
  try {
    await redis.connect();
  } catch (cause) {
    redis.disconnect();
    throw new SidecarError('SIDECAR_STORE_UNAVAILABLE', {
      message: `cannot connect to Redis at ${redactRedisUrl(config.url)}: ${(lastError ?? (cause as Error)).message}`,
      cause,
    });
  }
  return redis;
}

/** A Redis URL without its password, for messages. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_, auth: string) => `//${auth.includes(':') ? `${auth.slice(0, auth.indexOf(':'))}:***` : '***'}@`);
}

/**
 * The keys matching `pattern` (a SCAN glob over unprefixed names), unprefixed: SCAN is
 * the one command whose pattern ioredis does not prefix, and whose answers it does not
 * strip. The prefix is matched literally, whatever glob characters it holds.
 */
export async function* scanKeys(redis: Redis, pattern: string, count = 200): AsyncGenerator<string> {
  const prefix = redis.options.keyPrefix ?? '';
  const match = prefix.replace(/[*?[\]\\]/g, '\\$&') + pattern;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', count);
    cursor = next;
    for (const key of keys) if (key.startsWith(prefix)) yield key.slice(prefix.length);
  } while (cursor !== '0');
}
