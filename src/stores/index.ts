export {
  connectRedis,
  createRedis,
  describeRedisStore,
  isCluster,
  loadRedisClient,
  redactRedisUrl,
  redisOfConfigFile,
  redisReadiness,
  scanKeys,
  waitForRedis,
  type RedisStoreConfig,
  type StoreClient,
} from './redis.ts';
export { createLogThrottle, type LogThrottle } from './throttle.ts';
export { createStoreFailureHandler, type FailModeStats, type StoreFailureHandler } from './fail-mode.ts';
