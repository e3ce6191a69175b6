import type { IncomingMessage } from 'node:http';
import type { StoreClient } from '../stores/index.ts';
import type { SidecarConfig } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import { createApiKeyVerifier, type ApiKeyVerifier } from './apikeys.ts';
import { createCredentialReader } from './credentials.ts';
import { createJwksSource, type JwksSource } from './jwks.ts';
import { allowedAlgorithms, createJwtVerifier, type JwtVerifier } from './jwt.ts';
import { createKeyring } from './keyring.ts';
import { loadKeyFiles } from './keys.ts';
import type { Principal } from './principal.ts';

export type { Principal } from './principal.ts';
export { createApiKeyVerifier, apiKeyRedisKey, type ApiKeyVerifier, type ApiKeysConfig } from './apikeys.ts';
export { apiKeyRecordSchema, parseApiKeyFile, readApiKeyFile, writeApiKeyFile, type ApiKeyRecord } from './apikey-file.ts';
export { API_KEY_PREFIX, apiKeyId, generateApiKey, hashApiKey, hashesEqual, type NewApiKey } from './apikey-format.ts';
export { createClaimMapper, type ClaimMapper } from './claims.ts';
export { createCredentialReader, type Credential, type CredentialSources } from './credentials.ts';
export { issueToken, type IssuedClaims } from './issuer.ts';
export { createJwksSource, type JwksSource, type JwksSourceOptions } from './jwks.ts';
export { allowedAlgorithms, createJwtVerifier, toSidecarError, type JwtConfig, type JwtVerifier } from './jwt.ts';
export { createKeyring, type Keyring, type KeyringOptions } from './keyring.ts';
export { importJwk, importJwks, keyFitsAlgorithm, loadKeyFiles, type VerificationKey } from './keys.ts';
export { createTokenCache, type TokenCache } from './token-cache.ts';

/** Identifies the caller of a request. */
export interface Authenticator {
  /**
   * The caller's principal; undefined when the request carries no credential (the caller
   * decides between 401 and a public route). A bad credential throws a SidecarError with
   * its precise code (SIDECAR_TOKEN_*, SIDECAR_API_KEY_INVALID, SIDECAR_KEYS_UNAVAILABLE).
   */
  authenticate(req: IncomingMessage): Promise<Principal | undefined>;
  /** False when neither auth.jwt nor auth.apiKeys is configured: every request passes. */
  readonly enabled: boolean;
  /** A problem that should fail readiness (no JWKS loaded yet), or undefined. */
  readiness(): string | undefined;
  /** Re-reads the API key file; a broken file keeps the previous keys and rejects. */
  reload(): Promise<void>;
  /** Stops background JWKS refreshes. Safe to call twice. */
  close(): Promise<void>;
  /** Hit and miss counts of the verified-token cache; undefined without auth.jwt. */
  tokenCacheStats(): { readonly hits: number; readonly misses: number } | undefined;
}

export interface AuthenticatorDeps {
  logger: Logger;
  /** Needed when auth.apiKeys.redis is on: a client from createRedis (it adds the key prefix); the caller owns (and closes) it. */
  redis?: StoreClient | undefined;
  /** Epoch milliseconds; a fake clock in tests. */
  now?: () => number;
  /** Build everything, fetch nothing: the JWKS is not fetched (validate). */
  offline?: boolean;
}

/**
 * Builds the identification stage from auth.jwt and auth.apiKeys: key files are read,
 * keys imported, the API key file validated and the JWKS fetched once, all here. A JWKS
 * endpoint that is down does not fail creation: tokens then get SIDECAR_KEYS_UNAVAILABLE
 * (503) and readiness() says why until a fetch succeeds. A bad key file or API key file
 * does fail it.
 *
 * @example
 *   const auth = await createAuthenticator(config.auth, { logger });
 *   const principal = await auth.authenticate(req); // undefined: no credential
 */
export async function createAuthenticator(config: SidecarConfig['auth'], deps: AuthenticatorDeps): Promise<Authenticator> {
  const now = deps.now ?? Date.now;
  const { jwt, apiKeys } = config;
  let jwks: JwksSource | undefined;
  let jwtVerifier: JwtVerifier | undefined;
  let apiKeyVerifier: ApiKeyVerifier | undefined;

  if (apiKeys) apiKeyVerifier = await createApiKeyVerifier(apiKeys, { logger: deps.logger, redis: deps.redis, now });
  if (jwt) {
    // Everything that can throw runs before the JWKS timer starts, so a failed start leaks nothing.
    allowedAlgorithms(jwt);
    const staticKeys = loadKeyFiles(jwt.keyFiles);
    if (jwt.jwksUrl) {
      jwks = createJwksSource({
        url: jwt.jwksUrl,
        refreshMs: jwt.jwksRefresh,
        cooldownMs: jwt.jwksCooldown,
        timeoutMs: jwt.jwksTimeout,
        logger: deps.logger,
        now,
        start: deps.offline !== true,
      });
    }
    const secret = jwt.secret === undefined ? undefined : new TextEncoder().encode(jwt.secret);
    jwtVerifier = createJwtVerifier(jwt, { keyring: createKeyring({ secret, staticKeys, jwks }), now });
    if (!secret && staticKeys.length === 0 && !jwks) {
      deps.logger.warn({ event_type: 'auth' }, 'auth.jwt has no secret, keyFiles or jwksUrl: every token will be refused');
    }
    // The first fetch is under way; wait for it (bounded by jwksTimeout) so that a
    // healthy provider means ready at start, but never fail on it.
    if (deps.offline !== true) await jwks?.refresh();
  }

  const read = createCredentialReader({
    bearerHeader: jwt?.header,
    cookie: jwt?.cookie,
    apiKeyHeader: apiKeys?.header,
  });

  return {
    enabled: jwt !== undefined || apiKeys !== undefined,
    async authenticate(req) {
      const credential = read(req);
      if (credential === undefined) return undefined;
      if (credential.kind === 'jwt') return jwtVerifier!.verify(credential.token);
      return apiKeyVerifier!.verify(credential.key);
    },
    readiness: () => jwks?.problem(),
    reload: async () => apiKeyVerifier?.reload(),
    tokenCacheStats: () => jwtVerifier?.cache.stats,
    async close() {
      jwks?.close();
    },
  };
}
