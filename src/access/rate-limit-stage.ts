import type { SidecarConfig } from '../config/index.ts';
import type { RequestContext, Stage } from '../core/index.ts';
import { enforceRateLimit, type RateLimiter, type RateRule } from '../ratelimit/index.ts';

interface RouteRule extends RateRule {
  route: string;
  methods: ReadonlySet<string> | undefined;
}

/**
 * Per principal (or client address when anonymous) and per principal and route template.
 * Routes are matched by template, so /agents/1 and /agents/2 share one bucket; the template
 * is resolved for every request, auth on or off (route.ts).
 */
export function createRateLimitStage(config: SidecarConfig['rateLimit'], limiter: RateLimiter): Stage | undefined {
  const perPrincipal = config.perPrincipal === undefined ? undefined : toRule(config.perPrincipal);
  const routes: RouteRule[] = config.routes.map((r) => ({ ...toRule(r), route: r.path, methods: r.methods === undefined ? undefined : new Set(r.methods) }));
  if (perPrincipal === undefined && routes.length === 0) return undefined;

  return async function rateLimit(ctx: RequestContext) {
    const who = ctx.principal ? `sub:${ctx.principal.subject}` : `ip:${ctx.forwarded.clientAddress}`;
    if (perPrincipal !== undefined) await enforceRateLimit(limiter, who, perPrincipal, ctx.responseHeaders, 'principal');
    // A path that could not be normalized (auth off) may be any route at the agent: it is
    // charged to each, so that spelling a path oddly cannot escape a route's limit.
    const any = ctx.pathInvalid === true;
    if (ctx.route === undefined && !any) return;
    for (const r of routes) {
      if ((!any && r.route !== ctx.route) || (r.methods !== undefined && !r.methods.has(ctx.req.method ?? 'GET'))) continue;
      await enforceRateLimit(limiter, `${who}|${r.route}`, r, ctx.responseHeaders, 'route');
    }
  };
}

function toRule(r: { requests: number; per: number; burst?: number | undefined }): RateRule {
  return { requests: r.requests, perMs: r.per, burst: r.burst };
}
