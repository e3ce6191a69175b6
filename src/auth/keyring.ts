import type { KeyObject } from 'node:crypto';
import type { JWSHeaderParameters } from 'jose';
import { SidecarError } from '../errors/index.ts';
import type { JwksSource } from './jwks.ts';
import { keyFitsAlgorithm, type VerificationKey } from './keys.ts';

/** Finds the keys that may verify a token, from its protected header. */
export interface Keyring {
  /**
   * The candidate keys for this header, best first. Throws SIDECAR_TOKEN_KEY_UNKNOWN when
   * none fits, SIDECAR_KEYS_UNAVAILABLE when the remote JWKS has never loaded.
   */
  resolve(header: JWSHeaderParameters): Promise<ReadonlyArray<KeyObject | Uint8Array>>;
}

export interface KeyringOptions {
  /** The HMAC secret (HS*), already encoded. */
  secret?: Uint8Array | undefined;
  /** Keys from auth.jwt.keyFiles. */
  staticKeys: readonly VerificationKey[];
  jwks?: JwksSource | undefined;
}

/**
 * Key selection looks only at `alg` and `kid`. The `jku`, `x5u`, `jwk` and `x5c` header
 * parameters are never consulted: a key named by the token itself proves nothing
 * (CVE-2018-0114 and its kin).
 */
export function createKeyring(options: KeyringOptions): Keyring {
  const { secret, staticKeys, jwks } = options;

  function matching(alg: string, kid: string | undefined): VerificationKey[] {
    const all = jwks ? [...staticKeys, ...jwks.keys()] : staticKeys;
    // RFC 7515 §4.1.4: with a kid, only that key; without one, any key that fits the
    // algorithm. Sets are small, so trying each is cheap.
    return all.filter((k) => keyFitsAlgorithm(k, alg) && (kid === undefined || k.kid === kid));
  }

  // A key configured without a kid (a PEM file) was meant to verify whatever its issuer
  // signs, and issuers often add a kid the PEM cannot carry: fall back to those keys.
  const kidless = (alg: string) => matching(alg, undefined).filter((k) => k.kid === undefined);

  return {
    async resolve(header) {
      const alg = header.alg ?? '';
      if (alg.startsWith('HS')) {
        if (!secret) throw new SidecarError('SIDECAR_TOKEN_ALGORITHM_REFUSED');
        return [secret];
      }
      const kid = typeof header.kid === 'string' ? header.kid : undefined;
      let found = matching(alg, kid);
      if (found.length === 0 && jwks) {
        // An unknown kid usually means the provider rotated keys: refetch (rate-limited).
        await jwks.refreshSoon();
        found = matching(alg, kid);
      }
      if (found.length === 0 && kid !== undefined) found = kidless(alg);
      if (found.length === 0 && jwks && !jwks.loaded) {
        throw new SidecarError('SIDECAR_KEYS_UNAVAILABLE', { headers: { 'retry-after': '5' } });
      }
      if (found.length === 0) throw new SidecarError('SIDECAR_TOKEN_KEY_UNKNOWN');
      return found.map((k) => k.key);
    },
  };
}
