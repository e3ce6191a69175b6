import type { StoreClient } from '../stores/index.ts';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { apiKeyRecordSchema, readApiKeyFile, type ApiKeyRecord } from './apikey-file.ts';
import { apiKeyId, hashApiKey, hashesEqual } from './apikey-format.ts';
import type { Principal } from './principal.ts';

export type ApiKeysConfig = NonNullable<SidecarConfig['auth']['apiKeys']>;

/** Checks presented API keys against the file and/or Redis. */
export interface ApiKeyVerifier {
  /** The principal for a valid key; throws SIDECAR_API_KEY_INVALID otherwise. */
  verify(key: string): Promise<Principal>;
  /** Re-reads the file and swaps the set at once; a broken file keeps the old set and throws. */
  reload(): Promise<void>;
  /** Keys loaded from the file. */
  readonly size: number;
}

export interface ApiKeyVerifierDeps {
  logger: Logger;
  /** A client from createRedis: it adds stores.redis.keyPrefix itself. */
  redis?: StoreClient | undefined;
  now: () => number;
}

/**
 * Where a key record lives in Redis: `apikey:<id>`, a JSON ApiKeyRecord, under
 * stores.redis.keyPrefix, which the client adds (see stores/redis.ts).
 */
export function apiKeyRedisKey(id: string): string {
  return `apikey:${id}`;
}

interface Compiled {
  record: ApiKeyRecord;
  principal: Principal;
  /** Epoch ms, or Infinity. */
  expires: number;
}

/**
 * Builds the API key stage. The file is read and validated here (a bad file stops the
 * start); per request there is one hash, one map lookup and, when configured and the
 * id is not in the file, one Redis GET. The file wins over Redis for the same id, so
 * an operator can always override or disable a key locally.
 */
export async function createApiKeyVerifier(config: ApiKeysConfig, deps: ApiKeyVerifierDeps): Promise<ApiKeyVerifier> {
  const { logger, now } = deps;
  const redis = config.redis ? deps.redis : undefined;
  if (config.redis && !redis) {
    throw new SidecarError('SIDECAR_CONFIG_INVALID', { message: 'auth.apiKeys.redis is on but stores.redis is not configured.' });
  }
  let fromFile = config.file === undefined ? new Map<string, Compiled>() : compileAll(await readApiKeyFile(config.file, { key: 'auth.apiKeys.file' }));

  async function lookup(id: string): Promise<Compiled | undefined> {
    const local = fromFile.get(id);
    if (local || !redis) return local;
    let json: string | null;
    try {
      json = await redis.get(apiKeyRedisKey(id));
    } catch (cause) {
      throw new SidecarError('SIDECAR_STORE_UNAVAILABLE', { cause });
    }
    if (json === null) return undefined;
    try {
      return compile(apiKeyRecordSchema.parse(JSON.parse(json)));
    } catch (err) {
      // A corrupt record refuses that one key, loudly; it must not take the sidecar down.
      logger.error({ event_type: 'api_keys', key_id: id, error: (err as Error).message }, 'invalid API key record in Redis');
      return undefined;
    }
  }

  return {
    async verify(key) {
      const id = apiKeyId(key);
      if (id === undefined) throw new SidecarError('SIDECAR_API_KEY_INVALID');
      // The id is public, so looking it up is not a timing leak; only the secret part
      // is compared, and in constant time.
      const found = await lookup(id);
      const presented = hashApiKey(key);
      if (!found || !hashesEqual(presented, found.record.hash) || !found.record.enabled || found.expires <= now()) {
        throw new SidecarError('SIDECAR_API_KEY_INVALID', { details: { keyId: id } });
      }
      return found.principal;
    },
    async reload() {
      if (config.file === undefined) return;
      try {
        fromFile = compileAll(await readApiKeyFile(config.file, { key: 'auth.apiKeys.file' }));
        logger.info({ event_type: 'api_keys', file: config.file, keys: fromFile.size }, 'API keys reloaded');
      } catch (err) {
        logger.error({ event_type: 'api_keys', file: config.file, error: (err as Error).message }, 'API key file not reloaded; keeping the previous keys');
        throw err;
      }
    },
    get size() {
      return fromFile.size;
    },
  };
}

function compileAll(records: readonly ApiKeyRecord[]): Map<string, Compiled> {
  return new Map(records.map((r) => [r.id, compile(r)]));
}

function compile(record: ApiKeyRecord): Compiled {
  const expires = record.expiresAt === undefined ? Infinity : Date.parse(record.expiresAt);
  const principal: Principal = Object.freeze({
    subject: record.subject,
    roles: Object.freeze([...record.roles]),
    scopes: Object.freeze([...(record.scopes ?? [])]),
    method: 'api_key' as const,
    keyId: record.id,
    expiresAt: Number.isFinite(expires) ? Math.floor(expires / 1000) : undefined,
  });
  return { record, principal, expires };
}
