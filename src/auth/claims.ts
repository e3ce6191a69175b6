import type { JWSHeaderParameters, JWTPayload } from 'jose';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { Principal } from './principal.ts';

type ClaimsConfig = NonNullable<SidecarConfig['auth']['jwt']>['claims'];

/** Turns a verified token's claims into a Principal. */
export type ClaimMapper = (payload: JWTPayload, header: JWSHeaderParameters) => Principal;

const invalid = (message: string) => new SidecarError('SIDECAR_TOKEN_CLAIM_INVALID', { message });

/**
 * Compiles auth.jwt.claims into a mapper: the dot path of the roles claim is split once,
 * here, not per request. A claim of the wrong type is an invalid token, never silently
 * an empty role list that a policy might read as "no restrictions apply".
 */
export function createClaimMapper(config: ClaimsConfig): ClaimMapper {
  const rolesPath = config.roles.split('.');
  const { scopes: scopesClaim, tenant: tenantClaim, session: sessionClaim } = config;

  return (payload, header) => {
    if (typeof payload.sub !== 'string' || payload.sub === '') throw invalid('The token has no "sub" claim naming the caller.');
    const roles = stringList(dig(payload, rolesPath), config.roles, false);
    const scopes = new Set([...stringList(payload[scopesClaim], scopesClaim, true), ...stringList(payload.scope, 'scope', true)]);
    return Object.freeze({
      subject: payload.sub,
      roles: Object.freeze(roles),
      scopes: Object.freeze([...scopes]),
      tenantId: optionalString(payload[tenantClaim], tenantClaim),
      sessionId: optionalString(payload[sessionClaim], sessionClaim),
      method: 'jwt' as const,
      keyId: typeof header.kid === 'string' ? header.kid : undefined,
      tokenId: optionalString(payload.jti, 'jti'),
      issuedAt: typeof payload.iat === 'number' ? payload.iat : undefined,
      expiresAt: typeof payload.exp === 'number' ? payload.exp : undefined,
      audience:
        typeof payload.aud === 'string'
          ? [payload.aud]
          : Array.isArray(payload.aud)
            ? Object.freeze(payload.aud.filter((a) => typeof a === 'string'))
            : undefined,
    });
  };
}

function dig(payload: JWTPayload, path: readonly string[]): unknown {
  let at: unknown = payload;
  for (const part of path) {
    if (typeof at !== 'object' || at === null || !Object.hasOwn(at, part)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

/** A string or an array of strings; `split` reads a string as space-separated (RFC 8693 `scope`). */
function stringList(value: unknown, name: string, split: boolean): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return split ? value.split(' ').filter((s) => s !== '') : [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return [...(value as string[])];
  throw invalid(`The token's "${name}" claim must be a string or an array of strings.`);
}

function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid(`The token's "${name}" claim must be a string.`);
  return value;
}
