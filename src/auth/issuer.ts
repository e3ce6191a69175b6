import { randomUUID } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { SidecarError } from '../errors/index.ts';

/** Claims of a token the sidecar issues (the reference design: sub, scopes, exp, iat, type). */
export interface IssuedClaims extends JWTPayload {
  sub: string;
  roles?: string[];
  scopes?: string[];
  /** `refresh` tokens are refused as access tokens; the refresh endpoint takes only them. */
  type?: 'access' | 'refresh';
}

const encoder = new TextEncoder();

/**
 * Mints an HS256 token with `iat`, `exp` (= iat + ttlMs), a random `jti` and the given
 * claims (`type` defaults to access). Used by `agent-sidecar token` and the refresh
 * endpoint; the secret is auth.jwt.secret.
 *
 * @example
 *   const token = await issueToken(process.env.JWT_SECRET!, { sub: 'alice', roles: ['analyst'] }, 3_600_000);
 */
export async function issueToken(secret: string, claims: IssuedClaims, ttlMs: number, options: { now?: () => number } = {}): Promise<string> {
  if (secret.length < 32) {
    throw new SidecarError('SIDECAR_USAGE_INVALID', { message: 'The signing secret needs at least 32 characters (256 bits).' });
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') {
    throw new SidecarError('SIDECAR_USAGE_INVALID', { message: 'A token needs a subject (sub).' });
  }
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new SidecarError('SIDECAR_USAGE_INVALID', { message: 'A token lifetime must be a positive duration.' });
  }
  const iat = Math.floor((options.now ?? Date.now)() / 1000);
  return new SignJWT({ type: 'access', ...claims, iat, exp: iat + Math.ceil(ttlMs / 1000), jti: claims.jti ?? randomUUID() })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(encoder.encode(secret));
}
