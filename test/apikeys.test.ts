import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiKeyRedisKey,
  createAuthenticator,
  generateApiKey,
  hashApiKey,
  hashesEqual,
  parseApiKeyFile,
  type ApiKeyRecord,
  type Authenticator,
} from '../src/auth/index.ts';
import { validateConfig } from '../src/config/index.ts';
import { isSidecarError } from '../src/errors/index.ts';
import { createLogger } from '../src/log/index.ts';
import { createRedis, waitForRedis, type StoreClient } from '../src/stores/index.ts';
import { serveAuthenticator } from './helpers.ts';
import { startRedis, type RedisServer } from './redis-server.ts';

const logger = createLogger('silent');
let clock = Date.parse('2030-01-01T00:00:00Z');
const now = () => clock;

function record(fresh: ReturnType<typeof generateApiKey>, extra: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return { id: fresh.id, hash: fresh.hash, subject: 'svc-ingest', roles: ['agent_operator'], enabled: true, createdAt: '2029-12-01T00:00:00Z', ...extra };
}

async function serve(auth: Authenticator) {
  const served = await serveAuthenticator(auth);
  return { ...served, call: (key?: string) => served.call(key === undefined ? {} : { 'x-api-key': key }) };
}

describe('API keys from a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apikeys-'));
  const file = join(dir, 'keys.yaml');
  const good = generateApiKey();
  const expired = generateApiKey();
  const disabled = generateApiKey();
  let auth: Authenticator;
  let t: Awaited<ReturnType<typeof serve>>;

  beforeAll(async () => {
    writeFileSync(
      file,
      stringify({
        keys: [
          record(good, { scopes: ['ingest'], expiresAt: '2030-06-01T00:00:00Z' }),
          record(expired, { expiresAt: '2029-12-31T00:00:00Z' }),
          record(disabled, { enabled: false }),
        ],
      }),
    );
    auth = await createAuthenticator(validateConfig({ auth: { apiKeys: { file } } }).auth, { logger, now });
    t = await serve(auth);
  });
  afterAll(async () => {
    await t.close();
    await auth.close();
  });

  it('authenticates a valid key as its subject, roles and key id', async () => {
    expect(auth.enabled).toBe(true);
    const { status, principal } = await t.call(good.key);
    expect(status).toBe(200);
    expect(principal).toMatchObject({ subject: 'svc-ingest', roles: ['agent_operator'], scopes: ['ingest'], method: 'api_key', keyId: good.id });
    expect((await t.call()).principal).toBeNull();
  });

  it('refuses unknown, disabled, expired and malformed keys', async () => {
    for (const key of [generateApiKey().key, disabled.key, expired.key, 'sk_sidecar_nope', 'hunter2', `${good.key}x`]) {
      expect(await t.call(key), key).toMatchObject({ status: 401, code: 'SIDECAR_API_KEY_INVALID' });
    }
    // The right id with another secret: the hash comparison decides.
    const forged = `sk_sidecar_${good.id}_${generateApiKey().key.slice(-43)}`;
    expect((await t.call(forged)).code).toBe('SIDECAR_API_KEY_INVALID');
    // Expiry follows the clock.
    clock = Date.parse('2030-06-01T00:00:01Z');
    expect((await t.call(good.key)).code).toBe('SIDECAR_API_KEY_INVALID');
    clock = Date.parse('2030-01-01T00:00:00Z');
  });

  it('compares hashes in constant time, only equal-length digests', () => {
    const h = hashApiKey(good.key);
    expect(hashesEqual(h, good.hash)).toBe(true);
    expect(hashesEqual(hashApiKey(`${good.key.slice(0, -1)}${good.key.endsWith('A') ? 'B' : 'A'}`), good.hash)).toBe(false);
    expect(hashesEqual('abcd', good.hash)).toBe(false);
    expect(hashesEqual(h, 'zz')).toBe(false);
  });

  it('reloads atomically, and keeps the old set when the new file is broken', async () => {
    const added = generateApiKey();
    writeFileSync(file, stringify({ keys: [record(good), record(added)] }));
    await auth.reload();
    expect((await t.call(added.key)).status).toBe(200);
    writeFileSync(file, stringify({ keys: [record(good), { ...record(added), hash: 'not-a-hash' }] }));
    await expect(auth.reload()).rejects.toMatchObject({ code: 'SIDECAR_API_KEYS_INVALID' });
    writeFileSync(file, 'keys: [unterminated');
    await expect(auth.reload()).rejects.toMatchObject({ code: 'SIDECAR_API_KEYS_INVALID' });
    expect((await t.call(added.key)).status).toBe(200);
    expect((await t.call(good.key)).status).toBe(200);
  });

  it('names the bad entry of an invalid file, and refuses to start with one', async () => {
    const a = generateApiKey();
    const text = stringify({ keys: [record(a), { ...record(generateApiKey()), id: 'abcdefgh', roles: 'admin' }] });
    expect(() => parseApiKeyFile(text, 'k.yaml')).toThrow(/keys\[1\] \(id abcdefgh\): roles/);
    expect(() => parseApiKeyFile(stringify({ keys: [record(a), record(a)] }), 'k.yaml')).toThrow(/repeats the id/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, text);
    const err = await createAuthenticator(validateConfig({ auth: { apiKeys: { file: bad } } }).auth, { logger }).catch((e: unknown) => e);
    expect(isSidecarError(err) && err.code).toBe('SIDECAR_API_KEYS_INVALID');
  });
});

describe('API keys in Redis', () => {
  let redisServer: RedisServer;
  let redis: StoreClient;
  let raw: Redis;
  let auth: Authenticator;
  let t: Awaited<ReturnType<typeof serve>>;
  const dir = mkdtempSync(join(tmpdir(), 'apikeys-redis-'));
  const file = join(dir, 'keys.yaml');
  const inRedis = generateApiKey();
  const both = generateApiKey();

  beforeAll(async () => {
    redisServer = await startRedis();
    // The sidecar's own client: it adds stores.redis.keyPrefix to every key.
    redis = createRedis({ url: redisServer.url, keyPrefix: 'test:', connectTimeout: 1000, commandTimeout: 500 }, logger);
    await waitForRedis(redis);
    // Written as an operator would with redis-cli: the full name, prefix included.
    raw = new Redis(redisServer.url, { commandTimeout: 500, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    await once(raw, 'ready');
    await raw.set(`test:apikey:${inRedis.id}`, JSON.stringify(record(inRedis, { subject: 'from-redis' })));
    await redis.set(apiKeyRedisKey(both.id), JSON.stringify(record(both, { subject: 'from-redis' })));
    await redis.set(apiKeyRedisKey('corrupt0'), '{not json');
    writeFileSync(file, stringify({ keys: [record(both, { subject: 'from-file', enabled: false })] }));
    auth = await createAuthenticator(validateConfig({ auth: { apiKeys: { file, redis: true } } }).auth, { logger, now, redis });
    t = await serve(auth);
  });
  afterAll(async () => {
    await t.close();
    await auth.close();
    redis.disconnect();
    raw.disconnect();
    await redisServer.close();
  });

  it('finds keys in Redis; the file wins for the same id', async () => {
    expect((await t.call(inRedis.key)).principal).toMatchObject({ subject: 'from-redis', keyId: inRedis.id });
    expect((await t.call(both.key)).code).toBe('SIDECAR_API_KEY_INVALID');
    expect((await t.call(generateApiKey().key)).code).toBe('SIDECAR_API_KEY_INVALID');
  });

  it('refuses a disabled Redis record and survives a corrupt one', async () => {
    await redis.set(apiKeyRedisKey(inRedis.id), JSON.stringify(record(inRedis, { enabled: false })));
    expect(JSON.parse((await raw.get(`test:apikey:${inRedis.id}`))!)).toMatchObject({ enabled: false });
    expect((await t.call(inRedis.key)).code).toBe('SIDECAR_API_KEY_INVALID');
    expect((await t.call(`sk_sidecar_corrupt0_${'A'.repeat(43)}`)).code).toBe('SIDECAR_API_KEY_INVALID');
  });

  it('answers 503 when Redis is down, rather than letting the key through', async () => {
    await redisServer.stop();
    await new Promise((r) => setTimeout(r, 100));
    expect(await t.call(generateApiKey().key)).toMatchObject({ status: 503, code: 'SIDECAR_STORE_UNAVAILABLE' });
  });

  it('needs stores.redis when auth.apiKeys.redis is on', async () => {
    const err = await createAuthenticator(validateConfig({ auth: { apiKeys: { redis: true } } }).auth, { logger }).catch((e: unknown) => e);
    expect(isSidecarError(err) && err.code).toBe('SIDECAR_CONFIG_INVALID');
  });
});
