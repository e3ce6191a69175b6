import type { Principal } from '../auth/index.ts';
import type { McpConfig } from '../config/index.ts';
import type { RequestContext, Stage } from '../core/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { Policy } from '../policy/index.ts';

/** RFC 9728 3: the metadata lives here, and for a resource with a path, here plus that path. */
export const WELL_KNOWN = '/.well-known/oauth-protected-resource';

export interface ProtectedResourceOptions {
  config: NonNullable<McpConfig['protectedResource']>;
  /** auth.jwt.issuer: the authorization servers when the configuration names none. */
  issuers: readonly string[] | undefined;
  policy: () => Policy;
}

/** The MCP routes as an OAuth protected resource: metadata, challenges and audience. */
export interface ProtectedResource {
  /** Answers GET (and HEAD) of the metadata documents; runs before the route is resolved, without a credential. */
  readonly stage: Stage;
  /** The auth-params a 401 on an MCP route adds to its Bearer challenge (RFC 9728 5.1); undefined elsewhere. */
  challenge(ctx: RequestContext): string | undefined;
  /** Refuses, on an MCP route, a token whose aud does not name this resource (RFC 8707). */
  checkAudience(ctx: RequestContext, principal: Principal): void;
}

/** https://Agents.example.com/mcp/ and https://agents.example.com/mcp name one resource. */
function canonical(uri: string): string {
  try {
    const u = new URL(uri);
    return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return uri;
  }
}

const pathOf = (target: string) => {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
};

/**
 * Builds the protected resource of the MCP routes. A route's resource identifier is the
 * configured origin and the route's path (https://agents.example.com/mcp); the origin alone
 * names the whole sidecar, which a client that fell back to the root metadata asks tokens for.
 */
export function createProtectedResource(o: ProtectedResourceOptions): ProtectedResource {
  const origin = new URL(o.config.origin).origin;
  const base = {
    authorization_servers: o.config.authorizationServers ?? o.issuers ?? [],
    bearer_methods_supported: ['header'],
    ...(o.config.scopes === undefined ? {} : { scopes_supported: o.config.scopes }),
  };
  const scopeParam = o.config.scopes === undefined || o.config.scopes.length === 0 ? '' : `, scope="${o.config.scopes.join(' ')}"`;
  const document = (resource: string) => JSON.stringify({ resource, ...base });

  /** Whether the path is an MCP route of the policy in force. */
  const isMcp = (policy: Policy, path: string): boolean => {
    const route = policy.match('POST', path).route;
    return route !== undefined && policy.mcp(route) !== undefined;
  };

  const stage: Stage = function protectedResourceMetadata(ctx) {
    const target = ctx.target;
    // The cheap test first: every request passes here.
    if (target.charCodeAt(1) !== 0x2e /* . */ || !target.startsWith(WELL_KNOWN)) return;
    const method = ctx.req.method;
    if (method !== 'GET' && method !== 'HEAD') return;
    const path = pathOf(target);
    const policy = o.policy();
    if (!policy.hasMcp) return;
    let resource: string;
    if (path === WELL_KNOWN) resource = origin;
    else if (path.charCodeAt(WELL_KNOWN.length) === 0x2f /* / */ && isMcp(policy, path.slice(WELL_KNOWN.length)))
      resource = `${origin}${path.slice(WELL_KNOWN.length)}`;
    else return;
    ctx.reply = { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'max-age=300' }, body: document(resource) };
  };

  return {
    stage,
    challenge(ctx) {
      const route = ctx.route;
      if (route === undefined || o.policy().mcp(route) === undefined) return undefined;
      return `resource_metadata="${origin}${WELL_KNOWN}${pathOf(ctx.target)}"${scopeParam}`;
    },
    checkAudience(ctx, principal) {
      if (!o.config.requireAudience || principal.method !== 'jwt') return;
      const route = ctx.route;
      const policy = o.policy();
      if (route === undefined || !policy.hasMcp || policy.mcp(route) === undefined) return;
      const own = `${origin}${pathOf(ctx.target)}`;
      for (const aud of principal.audience ?? []) {
        const c = canonical(aud);
        if (c === own || c === origin) return;
      }
      throw new SidecarError('SIDECAR_TOKEN_AUDIENCE_REFUSED', { details: { resource: own } });
    },
  };
}
