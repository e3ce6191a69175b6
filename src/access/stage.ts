import type { AuditSink } from '../audit/index.ts';
import type { Principal } from '../auth/index.ts';
import { isSidecarError, SidecarError } from '../errors/index.ts';
import type { RequestContext, Stage } from '../core/index.ts';
import type { Logger } from '../log/index.ts';
import type { Policy } from '../policy/index.ts';
import { effectiveMethod } from './method-override.ts';

export interface AccessDeps {
  authenticate: (ctx: RequestContext) => Promise<Principal | undefined>;
  policy: () => Policy;
  checkRevoked: ((p: Principal) => Promise<void>) | undefined;
  identity: { set(ctx: RequestContext, p: Principal): void };
  /** Removes the token cookie before forwarding, when tokens come in a cookie. */
  stripTokenCookie: ((ctx: RequestContext) => void) | undefined;
  audit: AuditSink;
  logger: Logger;
  dryRun: boolean;
  methodOverride: 'strip' | 'authorize';
  /** Auth-params a 401 adds to its Bearer challenge for this request (MCP: resource_metadata, RFC 9728 5.1). */
  challenge?: ((ctx: RequestContext) => string | undefined) | undefined;
  /** Refuses an authenticated principal for this request (MCP: a token for another audience, RFC 8707). */
  checkPrincipal?: ((ctx: RequestContext, principal: Principal) => void) | undefined;
}

/**
 * Identify and authorize, in this order: skip credentials on public routes, authenticate,
 * check revocation, decide with the policy, audit the decision. The route stage before it
 * normalized the path (what is matched is exactly what is forwarded) and resolved the route.
 */
export function createAccessStage(deps: AccessDeps): Stage {
  const { audit } = deps;

  return async function access(ctx) {
    deps.stripTokenCookie?.(ctx);
    const method = effectiveMethod(ctx, deps.methodOverride);
    // With an override forwarded, the agent may run either method (many honour it only on
    // POST), so both must be allowed.
    const real = ctx.req.method ?? 'GET';
    const q = ctx.target.indexOf('?');
    const path = q === -1 ? ctx.target : ctx.target.slice(0, q);
    const policy = deps.policy();

    const match = policy.match(method, path);
    if (match.public && (real === method || policy.match(real, path).public)) return;

    let principal: Principal | undefined;
    try {
      principal = await deps.authenticate(ctx);
      if (principal === undefined) {
        const params = deps.challenge?.(ctx);
        throw new SidecarError('SIDECAR_CREDENTIALS_MISSING', { headers: { 'www-authenticate': params === undefined ? 'Bearer' : `Bearer ${params}` } });
      }
      if (principal.method === 'jwt' && deps.checkRevoked !== undefined) await deps.checkRevoked(principal);
      deps.checkPrincipal?.(ctx, principal);
    } catch (err) {
      audit.emit({
        event_type: 'authentication',
        success: false,
        reason: isSidecarError(err) ? err.code : 'SIDECAR_INTERNAL',
        user_id: principal?.subject,
        ip_address: ctx.forwarded.clientAddress,
        user_agent: ctx.req.headers['user-agent'],
        request_id: ctx.requestId,
      });
      // RFC 9110 11.6.1: every 401 carries a challenge; RFC 6750 3.1: invalid_token for a bad one.
      if (isSidecarError(err) && err.status === 401 && err.headers?.['www-authenticate'] === undefined) {
        const params = deps.challenge?.(ctx);
        ctx.responseHeaders.set('www-authenticate', params === undefined ? 'Bearer error="invalid_token"' : `Bearer error="invalid_token", ${params}`);
      }
      throw err;
    }
    ctx.principal = principal;
    audit.emit({
      event_type: 'authentication',
      success: true,
      user_id: principal.subject,
      auth_method: principal.method,
      ip_address: ctx.forwarded.clientAddress,
      user_agent: ctx.req.headers['user-agent'],
      request_id: ctx.requestId,
    });

    const named = policy.decide(method, path, principal);
    const decision = real === method || !named.allowed ? named : policy.decide(real, path, principal);
    const dryRun = deps.dryRun || decision.dryRun;
    audit.emit({
      event_type: 'authorization',
      user_id: principal.subject,
      action: decision.permission ?? '(no rule)',
      resource: `${real === method ? method : `${real} as ${method}`} ${path}`,
      route: decision.route,
      allowed: decision.allowed,
      dry_run: dryRun,
      reason: decision.code,
      ip_address: ctx.forwarded.clientAddress,
      request_id: ctx.requestId,
    });
    if (!decision.allowed && !dryRun) {
      throw new SidecarError(decision.code ?? 'SIDECAR_ROUTE_NOT_ALLOWED', {
        message:
          decision.code === 'SIDECAR_FORBIDDEN' ? `This route needs the permission ${decision.permission}, which the caller's roles do not grant.` : undefined,
        details: decision.permission === undefined ? undefined : { permission: decision.permission },
      });
    }
    deps.identity.set(ctx, principal);
  };
}
