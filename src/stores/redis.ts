import { createRequire } from 'node:module';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { ReadinessCheck } from '../core/index.ts';
import { loadConfig, type SidecarConfig } from '../config/index.ts';
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
  return loadIoredis().Redis;
}

function loadIoredis(): typeof import('ioredis') {
  // In the single executable (a CommonJS bundle) `require` is the bundle's own, which holds
  // ioredis and still loads it only on this call; from ESM it is created here.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a synchronous, lazy load; see above
  return (typeof require === 'function' ? require('ioredis') : createRequire(import.meta.url)('ioredis')) as typeof import('ioredis');
}

/**
 * The client every store uses: one server, a primary found through Sentinels, or a Redis
 * Cluster. The stores use only what all three do alike: single-key commands, and scripts
 * whose keys share a slot (hash tags); isCluster tells the one place that differs (a
 * revocation check reads two keys of different slots).
 */
export type StoreClient = Redis | Cluster;

export const isCluster = (client: StoreClient): client is Cluster => (client as { isCluster?: boolean }).isCluster === true;

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
export function createRedis(config: RedisStoreConfig, logger: Logger, errorLogIntervalMs = 10_000, options: { lazy?: boolean } = {}): StoreClient {
  const log = componentLogger(logger, 'agent-sidecar.redis');
  // Capped exponential backoff with jitter, so that a fleet of sidecars does not
  // reconnect in lockstep after a Redis restart or failover.
  const backoff = (times: number) => Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(times, 5)) + Math.floor(Math.random() * 100);
  // Lazy only for validate, which builds the client to check its settings and never uses it.
  const redis = newClient(config, { lazyConnect: options.lazy === true, retryStrategy: backoff });
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

/** host:port of a Sentinel ([v6]:port too). */
function sentinelAddress(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(hostPort.slice(i + 1)) };
}

/** redis://user:pass@host:port of a cluster node, as ioredis takes it. */
function clusterNode(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || 6379) };
}

function newClient(config: RedisStoreConfig, o: { lazyConnect: boolean; retryStrategy: (times: number) => number | null }): StoreClient {
  const ioredis = loadIoredis();
  const base = clientOptions(config);
  if (config.sentinel !== undefined) {
    const s = config.sentinel;
    return new ioredis.Redis({
      ...base,
      lazyConnect: o.lazyConnect,
      retryStrategy: o.retryStrategy,
      sentinels: s.nodes.map(sentinelAddress),
      name: s.masterName,
      role: 'master',
      db: s.db,
      ...(s.username === undefined ? {} : { username: s.username }),
      ...(s.password === undefined ? {} : { password: s.password }),
      ...(s.sentinelUsername === undefined ? {} : { sentinelUsername: s.sentinelUsername }),
      ...(s.sentinelPassword === undefined ? {} : { sentinelPassword: s.sentinelPassword }),
      ...(s.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
      // Every reconnect asks the Sentinels again, which finds a new primary. ioredis' failover
      // detector (subscribing to +switch-master) is left off: with it on, the clients of a
      // failover test kept failing for 30 s after the new primary was named; without, they
      // served again within 2 s of it, the reconnect backoff's cap (test/e2e/redis-failover.test.ts).
      sentinelRetryStrategy: o.retryStrategy,
      failoverDetector: false,
      updateSentinels: true,
    });
  }
  if (config.cluster !== undefined) {
    const first = new URL(config.cluster.nodes[0]!);
    const { keyPrefix, ...nodeOptions } = base;
    const clusterOptions: ClusterOptions = {
      keyPrefix,
      lazyConnect: o.lazyConnect,
      enableOfflineQueue: false,
      clusterRetryStrategy: o.retryStrategy,
      // A node that moved a slot or failed over: follow, briefly, then fail (failMode decides).
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      maxRedirections: 4,
      slotsRefreshTimeout: config.connectTimeout,
      redisOptions: {
        ...nodeOptions,
        ...(first.username === '' ? {} : { username: decodeURIComponent(first.username) }),
        ...(first.password === '' ? {} : { password: decodeURIComponent(first.password) }),
        ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
      },
    };
    return new ioredis.Cluster(config.cluster.nodes.map(clusterNode), clusterOptions);
  }
  return new ioredis.Redis(config.url!, { ...base, lazyConnect: o.lazyConnect, retryStrategy: o.retryStrategy });
}

/**
 * Resolves once the client is connected (commands fail immediately before that, the
 * offline queue being off); rejects after `timeoutMs`. For the CLI and for tests; the
 * sidecar itself starts without waiting and lets readiness report the store.
 */
export function waitForRedis(redis: StoreClient, timeoutMs = 5_000): Promise<void> {
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
export function redisReadiness(redis: StoreClient, timeoutMs = 1_000): ReadinessCheck {
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
 * A client for one command line run (keys, revoke): any topology of stores.redis, the same key
 * prefix rule as the sidecar's, connected before it is returned, and no reconnecting. A Redis
 * that cannot be reached rejects with SIDECAR_STORE_UNAVAILABLE naming the cause
 * (ECONNREFUSED, a refused password, no Sentinel answering), no password shown.
 */
export async function connectRedis(config: RedisStoreConfig): Promise<StoreClient> {
  const redis = newClient(config, { lazyConnect: true, retryStrategy: () => null });
  // ioredis reports the real cause as an event, then rejects with "Connection is closed".
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => (lastError = err));
  try {
    await redis.connect();
    // A cluster is connected once it knows its slots; a refusal then shows on the first command.
    if (isCluster(redis)) await redis.ping();
  } catch (cause) {
    redis.disconnect();
    throw new SidecarError('SIDECAR_STORE_UNAVAILABLE', {
      message: `cannot connect to Redis at ${describeRedisStore(config)}: ${(lastError ?? (cause as Error)).message}`,
      cause,
    });
  }
  return redis;
}

/**
 * stores.redis of a sidecar configuration file, for the commands that work on the sidecar's
 * stores (keys, revoke): the file is loaded as `run` loads it; one without stores.redis is
 * SIDECAR_USAGE_INVALID.
 */
export function redisOfConfigFile(file: string): RedisStoreConfig {
  const redis = loadConfig({ file }).stores.redis;
  if (redis === undefined) throw new SidecarError('SIDECAR_USAGE_INVALID', { message: `${file} has no stores.redis: its stores are in the sidecar's memory` });
  return redis;
}

/** Where stores.redis points, for messages and the start line: no password. */
export function describeRedisStore(r: RedisStoreConfig): string {
  if (r.sentinel !== undefined) return `sentinel ${r.sentinel.masterName} via ${r.sentinel.nodes.join(',')}`;
  if (r.cluster !== undefined) return `cluster via ${r.cluster.nodes.map(redactRedisUrl).join(',')}`;
  return redactRedisUrl(r.url!);
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
export async function* scanKeys(redis: StoreClient, pattern: string, count = 200): AsyncGenerator<string> {
  const prefix = redis.options.keyPrefix ?? '';
  const match = prefix.replace(/[*?[\]\\]/g, '\\$&') + pattern;
  // A cluster's keys are spread over its primaries: each is scanned in turn.
  for (const node of isCluster(redis) ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', count);
      cursor = next;
      for (const key of keys) if (key.startsWith(prefix)) yield key.slice(prefix.length);
    } while (cursor !== '0');
  }
}
