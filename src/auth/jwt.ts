import { decodeProtectedHeader, errors, jwtVerify, type JWSHeaderParameters, type JWTVerifyOptions } from 'jose';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError, type SidecarErrorCode } from '../errors/index.ts';
import { createClaimMapper } from './claims.ts';
import type { Keyring } from './keyring.ts';
import type { Principal } from './principal.ts';
import { createTokenCache, type TokenCache } from './token-cache.ts';

export type JwtConfig = NonNullable<SidecarConfig['auth']['jwt']>;

/** Verifies one bearer token; throws a SidecarError with the precise SIDECAR_TOKEN_* code. */
export interface JwtVerifier {
  verify(token: string): Promise<Principal>;
  readonly cache: TokenCache;
}

/**
 * The algorithms a token may use. HS* need auth.jwt.secret; with a secret, HS256 is
 * accepted even when not listed (the secret is documented as "enables HS256"), while
 * HS384/HS512 must be listed. Listing HS* without a secret is a configuration error
 * rather than a silent no-op, since the operator plainly expected HMAC tokens to work.
 * `none` is not in the schema's enum and is never accepted.
 */
export function allowedAlgorithms(config: Pick<JwtConfig, 'algorithms' | 'secret'>): string[] {
  const hs = config.algorithms.filter((a) => a.startsWith('HS'));
  if (hs.length > 0 && config.secret === undefined) {
    throw new SidecarError('SIDECAR_CONFIG_INVALID', {
      message: `auth.jwt.algorithms lists ${hs.join(', ')} but auth.jwt.secret is not set; set the secret or remove the HS* algorithms.`,
    });
  }
  const list = new Set(config.algorithms);
  if (config.secret !== undefined) list.add('HS256');
  return [...list];
}

// Compact JWS: three base64url segments (RFC 7515 §7.1). An empty signature is let through
// to the alg check so that `none` is reported as a refused algorithm, not as noise.
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

/**
 * Builds the JWT stage: options are checked and compiled here; `verify` only parses the
 * token. Order matters: size first (no parsing of a 1 MB header), then the cache, then
 * the header's `alg` against the allowlist before any key is looked up.
 */
export function createJwtVerifier(config: JwtConfig, deps: { keyring: Keyring; now: () => number }): JwtVerifier {
  const { keyring, now } = deps;
  const algorithms = allowedAlgorithms(config);
  const allowed = new Set(algorithms);
  const mapClaims = createClaimMapper(config.claims);
  const cache = createTokenCache(config.cacheSize, now);
  const base: JWTVerifyOptions = Object.freeze({
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: Math.floor(config.clockSkew / 1000),
    requiredClaims: config.requiredClaims,
  });

  async function verifyUncached(token: string): Promise<Principal> {
    if (!COMPACT.test(token)) throw new SidecarError('SIDECAR_TOKEN_MALFORMED');
    let header: JWSHeaderParameters;
    try {
      header = decodeProtectedHeader(token) as JWSHeaderParameters;
    } catch (cause) {
      throw new SidecarError('SIDECAR_TOKEN_MALFORMED', { cause });
    }
    if (typeof header.alg !== 'string' || !allowed.has(header.alg)) throw new SidecarError('SIDECAR_TOKEN_ALGORITHM_REFUSED');
    const keys = await keyring.resolve(header);
    const options: JWTVerifyOptions = { ...base, algorithms: [header.alg], currentDate: new Date(now()) };
    let failure: unknown;
    for (const key of keys) {
      try {
        const { payload, protectedHeader } = await jwtVerify(token, key, options);
        if (payload.type === 'refresh') throw new SidecarError('SIDECAR_TOKEN_TYPE_REFUSED');
        return mapClaims(payload, protectedHeader);
      } catch (err) {
        // Without a kid several keys may fit; only a bad signature moves on to the next one.
        if (err instanceof errors.JWSSignatureVerificationFailed) failure = err;
        else throw toSidecarError(err);
      }
    }
    throw toSidecarError(failure);
  }

  return {
    cache,
    async verify(token) {
      if (Buffer.byteLength(token) > config.maxTokenBytes) throw new SidecarError('SIDECAR_TOKEN_TOO_LARGE');
      const hit = cache.get(token);
      if (hit) return hit;
      const principal = await verifyUncached(token);
      cache.set(token, principal);
      return principal;
    },
  };
}

/** Maps jose's errors onto the catalog; anything unrecognised is a malformed token. */
export function toSidecarError(err: unknown): SidecarError {
  if (err instanceof SidecarError) return err;
  return new SidecarError(joseCode(err), { cause: err });
}

function joseCode(err: unknown): SidecarErrorCode {
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'SIDECAR_TOKEN_SIGNATURE_INVALID';
  if (err instanceof errors.JWTExpired) return 'SIDECAR_TOKEN_EXPIRED';
  if (err instanceof errors.JWTClaimValidationFailed) {
    return err.claim === 'nbf' && err.reason === 'check_failed' ? 'SIDECAR_TOKEN_NOT_YET_VALID' : 'SIDECAR_TOKEN_CLAIM_INVALID';
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return 'SIDECAR_TOKEN_ALGORITHM_REFUSED';
  if (err instanceof errors.JWKSNoMatchingKey) return 'SIDECAR_TOKEN_KEY_UNKNOWN';
  return 'SIDECAR_TOKEN_MALFORMED';
}
