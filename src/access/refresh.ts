import { jwtVerify } from 'jose';
import type { Principal } from '../auth/principal.ts';
import { issueToken } from '../auth/issuer.ts';
import { SidecarError } from '../errors/index.ts';
import type { RequestContext, Stage } from '../ingress/context.ts';

export interface RefreshOptions {
  path: string;
  secret: string;
  accessTtlMs: number;
  clockSkewMs: number;
  issuer?: readonly string[] | undefined;
  audience?: readonly string[] | undefined;
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
  return async function refresh(ctx: RequestContext) {
    const q = ctx.target.indexOf('?');
    if ((q === -1 ? ctx.target : ctx.target.slice(0, q)) !== options.path || ctx.req.method !== 'POST') return;
    const token = bearer(ctx) ?? (await bodyToken(ctx));
    if (token === undefined) throw new SidecarError('SIDECAR_REFRESH_INVALID');
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(token, key, {
        algorithms: ['HS256'],
        clockTolerance: options.clockSkewMs / 1000,
        requiredClaims: ['exp', 'sub'],
        issuer: options.issuer as string[] | undefined,
        audience: options.audience as string[] | undefined,
      }));
    } catch (cause) {
      throw new SidecarError('SIDECAR_REFRESH_INVALID', { cause });
    }
    if (claims.type !== 'refresh' || typeof claims.sub !== 'string') throw new SidecarError('SIDECAR_REFRESH_INVALID');
    const principal: Principal = {
      subject: claims.sub,
      roles: strings(claims.roles),
      scopes: strings(claims.scopes),
      method: 'jwt',
      tokenId: typeof claims.jti === 'string' ? claims.jti : undefined,
      issuedAt: typeof claims.iat === 'number' ? claims.iat : undefined,
      expiresAt: typeof claims.exp === 'number' ? claims.exp : undefined,
    };
    await options.checkRevoked?.(principal);
    const access = await issueToken(options.secret, { sub: principal.subject, roles: [...principal.roles], scopes: [...principal.scopes], type: 'access' }, options.accessTtlMs);
    ctx.reply = {
      status: 200,
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
      body: JSON.stringify({ access_token: access, token_type: 'Bearer', expires_in: Math.floor(options.accessTtlMs / 1000) }),
    };
  };
}

function bearer(ctx: RequestContext): string | undefined {
  const h = ctx.req.headers.authorization;
  return h !== undefined && /^bearer /i.test(h) ? h.slice(7).trim() : undefined;
}

async function bodyToken(ctx: RequestContext): Promise<string | undefined> {
  let text = '';
  for await (const chunk of ctx.req) {
    text += String(chunk);
    if (text.length > MAX_BODY) throw new SidecarError('SIDECAR_BODY_TOO_LARGE');
  }
  try {
    const v = JSON.parse(text) as { refresh_token?: unknown };
    return typeof v.refresh_token === 'string' ? v.refresh_token : undefined;
  } catch {
    return undefined;
  }
}

function strings(v: unknown): string[] {
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
