export { createRevocationAdmin, type RevocationAdminOptions } from './admin.ts';
export { createRevocationCheck, type RevocationCheck, type RevocationCheckOptions, type RevocationCheckStats } from './check.ts';
export { createMemoryRevocationStore } from './memory.ts';
export { createRedisRevocationStore, revocationKeys } from './redis.ts';
export { parseRevokeRequest, type RevokeRequest } from './request.ts';
export { revokedBySubject, type RevocationStore, type RevocationStoreOptions } from './store.ts';
