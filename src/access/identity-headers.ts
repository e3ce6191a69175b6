import type { Principal } from '../auth/index.ts';
import type { SidecarConfig } from '../config/index.ts';
import type { RequestContext } from '../core/index.ts';

type HeaderConfig = SidecarConfig['auth']['identityHeaders'];

/**
 * Client headers the agent must never receive: identity headers are its only source of truth
 * about the caller, so a client's copies go on every route, auth on or off; the credentials
 * go too unless configured to be forwarded.
 */
export function strippedRequestHeaders(config: HeaderConfig, credentialHeaders: readonly string[]): string[] {
  return [config.subject, config.roles, config.scopes, config.keyId, config.tenant, ...(config.forwardToken ? [] : credentialHeaders)];
}

export function createIdentityHeaders(config: HeaderConfig) {
  return {
    /** Tells the agent who called. */
    set(ctx: RequestContext, p: Principal): void {
      const h = ctx.upstreamHeaders;
      h.set(config.subject, headerSafe(p.subject));
      if (p.roles.length > 0) h.set(config.roles, headerSafe(p.roles.join(',')));
      if (p.scopes.length > 0) h.set(config.scopes, headerSafe(p.scopes.join(' ')));
      // The API key's id; a token's kid names a signing key, not the caller.
      if (p.method === 'api_key' && p.keyId !== undefined) h.set(config.keyId, headerSafe(p.keyId));
      if (p.tenantId !== undefined) h.set(config.tenant, headerSafe(p.tenantId));
    },
  };
}

const VISIBLE_ASCII = /^[\x20-\x7e]*$/;

/** Claims are arbitrary JSON strings; header values are not. Anything else is percent-encoded. */
function headerSafe(value: string): string {
  return VISIBLE_ASCII.test(value) ? value : encodeURIComponent(value);
}

/**
 * The token cookie (auth.jwt.cookie) is a credential like the Authorization header: unless
 * tokens are forwarded, the agent gets the Cookie header without it.
 */
export function createCookieStripper(cookieName: string | undefined, forwardToken: boolean): ((ctx: RequestContext) => void) | undefined {
  if (cookieName === undefined || forwardToken) return undefined;
  const prefix = `${cookieName}=`;
  return (ctx) => {
    const header = ctx.req.headers.cookie;
    if (header === undefined || !header.includes(prefix)) return;
    const kept = header
      .split(';')
      .filter((part) => !part.trimStart().startsWith(prefix))
      .join(';')
      .trim();
    if (kept === '') ctx.strippedHeaders.add('cookie');
    else ctx.upstreamHeaders.set('cookie', kept);
  };
}
