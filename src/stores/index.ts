export { createRedis, redisReadiness, waitForRedis, type RedisStoreConfig } from './redis.ts';
export { createLogThrottle, type LogThrottle } from './throttle.ts';
