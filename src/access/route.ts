import type { RequestContext, Stage } from '../core/index.ts';
import { normalizePath, type Policy } from '../policy/index.ts';

export interface RouteDeps {
  policy: () => Policy;
  rejectSemicolons: boolean;
  /**
   * Auth on: the normalized path is what is authorized and forwarded, and one that cannot be
   * normalized is refused (400 SIDECAR_PATH_INVALID). Auth off: the path is forwarded as sent.
   */
  enforce: boolean;
}

/**
 * The one place a request's route template is resolved, auth on or off: the policy (the
 * built-in reference policy or policy.file) matched on the normalized path, so that `/api//x`
 * and `/api/./x` are the route they name for telemetry (http.route, endpoint) and per-route
 * rate limits. With auth off a path that cannot be normalized is forwarded as `unmatched`
 * (refusing it would change what a telemetry-only sidecar lets through), marked so that the
 * rate limits can charge it to every route.
 */
export function createRouteStage(deps: RouteDeps): Stage {
  const normalize = { rejectSemicolons: deps.rejectSemicolons };
  return function route(ctx: RequestContext) {
    let target: string;
    try {
      target = normalizePath(ctx.target, normalize);
    } catch (err) {
      if (deps.enforce) throw err;
      ctx.pathInvalid = true;
      return;
    }
    if (deps.enforce) ctx.target = target;
    const q = target.indexOf('?');
    // The template does not depend on the method (a method override cannot change it).
    ctx.route = deps.policy().match(ctx.req.method ?? 'GET', q === -1 ? target : target.slice(0, q)).route;
  };
}
