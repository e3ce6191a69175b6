import assert from 'node:assert/strict';
import Router from 'find-my-way';
import type { Principal } from '../auth/index.ts';
import { compileA2aRules, type A2aRouteDocument, type A2aRules } from './a2a-rules.ts';
import { compileMcpRules, type McpRules } from './mcp-rules.ts';
import type { McpRouteDocument } from './mcp-schema.ts';

/** A validated policy document (what load.ts produces from YAML). */
export interface PolicyDocument {
  /** Role name -> the permissions it grants. */
  readonly roles: Readonly<Record<string, readonly string[]>>;
  readonly routes: readonly PolicyRoute[];
}

/** A public route lists its methods (undefined: any); a protected one maps METHOD (or *) to a permission. */
export type PolicyRoute =
  | { readonly path: string; readonly public: true; readonly dryRun: boolean; readonly methods: readonly string[] | undefined }
  | {
      readonly path: string;
      readonly public: false;
      readonly dryRun: boolean;
      readonly methods: Readonly<Record<string, string>>;
      /** An MCP endpoint: its messages are authorized per method, tool, prompt and resource (src/mcp). */
      readonly mcp?: McpRouteDocument | undefined;
      /** An A2A endpoint: its JSON-RPC requests are authorized per method and skill (src/a2a). */
      readonly a2a?: A2aRouteDocument | undefined;
    };

/** What the policy says about a method and path, before anyone is identified. */
export interface RouteMatch {
  /** The matched template, e.g. /api/v1/agents/{agent_id}; set even when the method has no rule. */
  readonly route: string | undefined;
  /** The permission the method needs on this route; undefined for public routes and no rule. */
  readonly permission: string | undefined;
  /** No credential is needed: the caller skips authentication. */
  readonly public: boolean;
  /** The route is in dry run: would-be denials are let through and audited. */
  readonly dryRun: boolean;
  /** A rule covers this method and path; false is default deny whatever the roles. */
  readonly matched: boolean;
}

/** The outcome of authorizing one request. */
export interface Decision {
  readonly route: string | undefined;
  readonly permission: string | undefined;
  readonly public: boolean;
  readonly allowed: boolean;
  readonly dryRun: boolean;
  readonly code: 'SIDECAR_FORBIDDEN' | 'SIDECAR_ROUTE_NOT_ALLOWED' | undefined;
}

/** A compiled, immutable policy. Swapping policies is swapping this one reference. */
export interface Policy {
  /** Where it came from: a file path or "built-in default policy". */
  readonly source: string;
  /** Problems that do not stop the policy, e.g. a permission that no role grants. */
  readonly warnings: readonly string[];
  readonly roles: ReadonlyMap<string, ReadonlySet<string>>;
  /** The route templates, in file order. */
  readonly templates: readonly string[];
  /** `path` is normalized (normalizePath) and has no query string. */
  match(method: string, path: string): RouteMatch;
  /**
   * Default deny: no rule for the method and path -> SIDECAR_ROUTE_NOT_ALLOWED; a rule whose
   * permission none of the principal's roles grants -> SIDECAR_FORBIDDEN. Public routes are
   * allowed with or without a principal.
   */
  decide(method: string, path: string, principal: Principal | undefined): Decision;
  /** Whether any of the principal's roles grants the permission (e.g. manage:users for the admin API). */
  hasPermission(principal: Principal | undefined, permission: string): boolean;
  /** The MCP rules of a route template (RouteMatch.route); undefined for a route that is not an MCP endpoint. */
  mcp(route: string): McpRules | undefined;
  /** Whether any route is an MCP endpoint. */
  readonly hasMcp: boolean;
  /** The A2A rules of a route template; undefined for a route that is not an A2A endpoint. */
  a2a(route: string): A2aRules | undefined;
  readonly hasA2a: boolean;
}

interface Rule {
  readonly match: RouteMatch;
  readonly allowed: Decision;
  readonly forbidden: Decision;
}

interface CompiledRoute {
  readonly rules: ReadonlyMap<string, Rule>;
  /** The `*` rule, or on a public route without methods the one rule. */
  readonly any: Rule | undefined;
  readonly miss: { readonly match: RouteMatch; readonly decision: Decision };
}

const NO_QUERY = Object.freeze({});
const NO_ROUTE_MATCH: RouteMatch = Object.freeze({ route: undefined, permission: undefined, public: false, dryRun: false, matched: false });
const NO_ROUTE: Decision = Object.freeze({
  route: undefined,
  permission: undefined,
  public: false,
  allowed: false,
  dryRun: false,
  code: 'SIDECAR_ROUTE_NOT_ALLOWED',
});

/**
 * find-my-way percent-decodes the path (decodeURI) before matching and cuts it at `?` and `#`,
 * so `/api/v1/%61gents` would match the literal `agents` and `/public#/x` would match `/public`,
 * while the upstream receives the literal bytes. Escaping these three characters makes the
 * router compare literal segments: templates never contain `%`, `?` or `#` (load.ts refuses them).
 */
const ROUTER_SPECIAL = /[%?#]/;
const ROUTER_SPECIAL_ALL = /[%?#]/g;
const ESCAPES: Record<string, string> = { '%': '%25', '?': '%3F', '#': '%23' };
const escapeSpecial = (c: string) => ESCAPES[c]!;

/**
 * Compiles a validated document: role -> permission Sets, one radix tree of templates, and one
 * frozen Decision per route and method, so that decide() allocates nothing of its own.
 */
export function buildPolicy(doc: PolicyDocument, source: string, warnings: readonly string[] = []): Policy {
  const roles = new Map<string, ReadonlySet<string>>();
  for (const [role, permissions] of Object.entries(doc.roles)) roles.set(role, new Set(permissions));

  // Input is already canonical (normalize.ts): no slash or case folding here.
  // Queries never reach the router: skip its per-match querystring parse.
  const router = Router({
    ignoreTrailingSlash: false,
    ignoreDuplicateSlashes: false,
    caseSensitive: true,
    maxParamLength: 65_536,
    querystringParser: () => NO_QUERY,
  });
  const declared = new Set(doc.routes.map((r) => canonical(r.path)));
  const noop = () => undefined;
  for (const route of doc.routes) {
    const compiled = compileRoute(route);
    router.on('GET', toRouterPath(route.path), noop, compiled);
    // A trailing /* also covers its base: /static/ arrives normalized as /static.
    if (route.path.endsWith('/*')) {
      const base = route.path.slice(0, -2) || '/';
      if (!declared.has(canonical(base))) {
        declared.add(canonical(base));
        router.on('GET', toRouterPath(base), noop, compiled);
      }
    }
  }

  const grants = (principal: Principal | undefined, permission: string): boolean => {
    if (principal === undefined) return false;
    for (const role of principal.roles) if (roles.get(role)?.has(permission) === true) return true;
    return false;
  };

  const routeOf = (path: string): CompiledRoute | undefined => {
    if (path.charCodeAt(0) !== 47 /* / */) return undefined;
    const found = router.find('GET', ROUTER_SPECIAL.test(path) ? path.replace(ROUTER_SPECIAL_ALL, escapeSpecial) : path);
    return found === null ? undefined : (found.store as CompiledRoute);
  };

  const mcp = new Map<string, McpRules>();
  for (const route of doc.routes) if (!route.public && route.mcp !== undefined) mcp.set(route.path, compileMcpRules(route.mcp, route.dryRun, grants));

  const a2a = new Map<string, A2aRules>();
  for (const route of doc.routes) if (!route.public && route.a2a !== undefined) a2a.set(route.path, compileA2aRules(route.a2a, route.dryRun, grants));

  return Object.freeze({
    source,
    warnings: Object.freeze([...warnings]),
    roles,
    templates: Object.freeze(doc.routes.map((r) => r.path)),
    match(method: string, path: string): RouteMatch {
      const route = routeOf(path);
      if (route === undefined) return NO_ROUTE_MATCH;
      return (route.rules.get(method) ?? route.any)?.match ?? route.miss.match;
    },
    decide(method: string, path: string, principal: Principal | undefined): Decision {
      const route = routeOf(path);
      if (route === undefined) return NO_ROUTE;
      const rule = route.rules.get(method) ?? route.any;
      if (rule === undefined) return route.miss.decision;
      if (rule.match.public) return rule.allowed;
      return grants(principal, rule.match.permission!) ? rule.allowed : rule.forbidden;
    },
    hasPermission: grants,
    mcp: (route: string) => mcp.get(route),
    hasMcp: mcp.size > 0,
    a2a: (route: string) => a2a.get(route),
    hasA2a: a2a.size > 0,
  });
}

function compileRoute(route: PolicyRoute): CompiledRoute {
  const { path: template, dryRun } = route;
  const rule = (permission: string | undefined): Rule => {
    const isPublic = permission === undefined;
    const base = { route: template, permission, public: isPublic, dryRun };
    return {
      match: Object.freeze({ ...base, matched: true }),
      allowed: Object.freeze({ ...base, allowed: true, code: undefined }),
      forbidden: Object.freeze({ ...base, allowed: false, code: isPublic ? undefined : 'SIDECAR_FORBIDDEN' }),
    };
  };
  const rules = new Map<string, Rule>();
  let any: Rule | undefined;
  if (route.public) {
    if (route.methods === undefined) any = rule(undefined);
    else for (const m of route.methods) rules.set(m, rule(undefined));
  } else {
    for (const [m, permission] of Object.entries(route.methods)) {
      if (m === '*') any = rule(permission);
      else rules.set(m, rule(permission));
    }
  }
  // RFC 9110 9.3.2: HEAD is GET without the body, so it needs what GET needs.
  const get = rules.get('GET');
  if (get !== undefined && !rules.has('HEAD')) rules.set('HEAD', get);
  assert(rules.size > 0 || any !== undefined, `route ${template} has no rule`);

  const missBase = { route: template, permission: undefined, public: false, dryRun };
  return {
    rules,
    any,
    miss: {
      match: Object.freeze({ ...missBase, matched: false }),
      decision: Object.freeze({ ...missBase, allowed: false, code: 'SIDECAR_ROUTE_NOT_ALLOWED' }),
    },
  };
}

/** /a/{id}/* -> /a/:p0/*; positional names, since only the template, not the values, matters. */
function toRouterPath(template: string): string {
  let n = 0;
  return template.replace(/\{[^/{}]+\}/g, () => `:p${n++}`);
}

/** Templates that differ only in parameter names match the same paths. */
export function canonical(template: string): string {
  return template.replace(/\{[^/{}]+\}/g, '{}');
}
