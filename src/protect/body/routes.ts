import type { ProtectionConfig } from '../../config/index.ts';
import { normalizePath } from '../../policy/index.ts';

export type ProtectedRoute = ProtectionConfig['routes'][number];

/**
 * Matches protection.routes, first match wins. Templates read as the policy's do: `{param}` is
 * one segment, a trailing `/*` is the route and everything below it. The path is matched in
 * its normalized form (with auth on it already is), so `//api/./v1` cannot slip past a rule.
 */
export function createRouteMatcher(routes: readonly ProtectedRoute[]): (method: string, target: string) => ProtectedRoute | undefined {
  const compiled = routes.map((route) => ({ route, re: templateRegex(route.path), methods: route.methods === undefined ? undefined : new Set(route.methods) }));
  return (method, target) => {
    let path = target;
    try {
      path = normalizePath(target, { rejectSemicolons: false });
    } catch {
      // A path the policy would refuse (auth off here): matched as it is.
    }
    const q = path.indexOf('?');
    if (q !== -1) path = path.slice(0, q);
    for (const c of compiled) {
      if (c.methods !== undefined && !c.methods.has(method)) continue;
      if (c.re.test(path)) return c.route;
    }
    return undefined;
  };
}

function templateRegex(template: string): RegExp {
  const wildcard = template.endsWith('/*');
  const base = wildcard ? template.slice(0, -2) : template;
  const body = base
    .split(/(\{[^/{}]+\})/)
    .map((part) => (part.startsWith('{') && part.endsWith('}') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}${wildcard ? '(?:/.*)?' : ''}$`);
}
