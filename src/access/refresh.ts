import { jwtVerify } from 'jose';
import { createClaimMapper } from '../auth/index.ts';
import { createCredentialReader } from '../auth/index.ts';
import type { Principal } from '../auth/index.ts';
import { issueToken } from '../auth/index.ts';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { RequestContext, Stage } from '../core/index.ts';

export interface RefreshOptions {
  path: string;
  secret: string;
  accessTtlMs: number;
  clockSkewMs: number;
  issuer?: readonly string[] | undefined;
  audience?: readonly string[] | undefined;
  /** Where roles, scopes, tenant and session live in the token (auth.jwt.claims). */
  claims: NonNullable<SidecarConfig['auth']['jwt']>['claims'];
  /** The header the bearer token comes in (auth.jwt.header). */
  header: string;
  checkRevoked: ((p: Principal) => Promise<void>) | undefined;
}

const MAX_BODY = 16 * 1024;

/**
 * POST {path} with a refresh token (Bearer, or {"refresh_token": "…"}) answers with a new
 * access token carrying the same subject, roles and scopes. Only `type: refresh` tokens
 * signed with the local secret are accepted; anything else is 400 (the reference design).
 */
export function createRefreshStage(options: RefreshOptions): Stage {
  const key = new TextEncoder().encode(options.secret);
  const toPrincipal = createClaimMapper(options.claims);
  const readCredential = createCredentialReader({ bearerHeader: options.header });
  return async function refresh(ctx: RequestContext) {
    const q = ctx.target.indexOf('?');
    if ((q === -1 ? ctx.target : ctx.target.slice(0, q)) !== options.path || ctx.req.method !== 'POST') return;
    const credential = readCredential(ctx.req);
    const token = credential?.kind === 'jwt' ? credential.token : await bodyToken(ctx);
    if (token === undefined) throw new SidecarError('SIDECAR_REFRESH_INVALID');
    let verified: Awaited<ReturnType<typeof jwtVerify>>;
    try {
      verified = await jwtVerify(token, key, {
        algorithms: ['HS256'],
        clockTolerance: options.clockSkewMs / 1000,
        requiredClaims: ['exp', 'sub'],
        issuer: options.issuer as string[] | undefined,
        audience: options.audience as string[] | undefined,
      });
    } catch (cause) {
      throw new SidecarError('SIDECAR_REFRESH_INVALID', { cause });
    }
    const claims = verified.payload;
    if (claims.type !== 'refresh') throw new SidecarError('SIDECAR_REFRESH_INVALID');
    let principal: Principal;
    try {
      principal = toPrincipal(claims, verified.protectedHeader);
    } catch (cause) {
      throw new SidecarError('SIDECAR_REFRESH_INVALID', { cause });
    }
    await options.checkRevoked?.(principal);
    // The new token must pass the same iss/aud checks as any other access token.
    const access = await issueToken(
      options.secret,
      {
        sub: principal.subject,
        ...atPath(options.claims.roles, [...principal.roles]),
        [options.claims.scopes]: [...principal.scopes],
        type: 'access',
        ...(claims.iss === undefined ? {} : { iss: claims.iss }),
        ...(claims.aud === undefined ? {} : { aud: claims.aud }),
        ...(principal.tenantId === undefined ? {} : { [options.claims.tenant]: principal.tenantId }),
      },
      options.accessTtlMs,
    );
    ctx.reply = {
      status: 200,
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
      body: JSON.stringify({ access_token: access, token_type: 'Bearer', expires_in: Math.floor(options.accessTtlMs / 1000) }),
    };
  };
}

async function bodyToken(ctx: RequestContext): Promise<string | undefined> {
  // Through ClientBody, as every reader of a body: it sends a 100 Continue the client waits
  // for, and holds a stalled body to limits.clientBodyTimeout.
  if (ctx.clientBody === undefined) return undefined;
  const { body, complete } = await ctx.clientBody.read(MAX_BODY);
  if (!complete) throw new SidecarError('SIDECAR_BODY_TOO_LARGE');
  try {
    const v = JSON.parse(body.toString('utf8')) as { refresh_token?: unknown };
    return typeof v.refresh_token === 'string' ? v.refresh_token : undefined;
  } catch {
    return undefined;
  }
}

/** { a: { b: value } } for "a.b": roles go back where the verifier reads them. */
function atPath(path: string, value: unknown): Record<string, unknown> {
  return path
    .split('.')
    .reverse()
    .reduce<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
}
