import type { Principal } from '../auth/index.ts';
import type { SidecarErrorCode } from '../errors/index.ts';
import type { McpGrant, McpRouteDocument } from './mcp-schema.ts';

export type ItemKind = 'tools' | 'prompts' | 'resources';

/** The outcome of authorizing one tool call, prompt or resource read. */
export interface ItemDecision {
  readonly allowed: boolean;
  /** Why not; undefined when allowed. */
  readonly code: SidecarErrorCode | undefined;
  /** The permission that allowed it, or the one the caller lacks; undefined: the route's alone. */
  readonly permission: string | undefined;
  /** The argument whose value no grant of the caller allows. */
  readonly argument?: string | undefined;
}

/** A route's compiled `mcp:` block, bound to the policy's roles. */
export interface McpRules {
  /** The route or its mcp block is in dry run: would-be refusals are let through and audited. */
  readonly dryRun: boolean;
  /** Some list answer may lose entries for some caller: the list filter is worth installing. */
  readonly filtersLists: boolean;
  /** The permission a JSON-RPC method needs besides the route's; undefined: none. */
  methodPermission(method: string): string | undefined;
  decide(kind: ItemKind, name: string, args: unknown, principal: Principal | undefined): ItemDecision;
  /** Whether a list answer shows this entry to the caller: not hidden, and some grant of theirs names it. */
  visible(kind: ItemKind, name: string, principal: Principal | undefined): boolean;
  /** Hidden from everyone, whatever the caller may call. */
  hidden(name: string): boolean;
}

const FORBIDDEN: Record<ItemKind, SidecarErrorCode> = {
  tools: 'SIDECAR_TOOL_FORBIDDEN',
  prompts: 'SIDECAR_PROMPT_FORBIDDEN',
  resources: 'SIDECAR_RESOURCE_FORBIDDEN',
};
const ALLOWED: ItemDecision = Object.freeze({ allowed: true, code: undefined, permission: undefined });
const NOT_ALLOWED: ItemDecision = Object.freeze({ allowed: false, code: 'SIDECAR_MCP_NOT_ALLOWED', permission: undefined });

/** `delete_*` -> /^delete_.*$/; every other character is literal. */
function globRegex(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map(escape).join('.*')}$`, 's');
}
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Exact names in a Map, patterns in file order: an exact entry wins over any pattern. */
function lookup<T>(record: Readonly<Record<string, T>>): (name: string) => T | undefined {
  const exact = new Map<string, T>();
  const patterns: Array<[RegExp, T]> = [];
  for (const [key, value] of Object.entries(record)) {
    if (key.includes('*')) patterns.push([globRegex(key), value]);
    else exact.set(key, value);
  }
  return (name) => {
    const hit = exact.get(name);
    if (hit !== undefined || patterns.length === 0) return hit;
    for (const [re, value] of patterns) if (re.test(name)) return value;
    return undefined;
  };
}

function argumentAt(args: unknown, path: readonly string[]): unknown {
  let at = args;
  for (const p of path) {
    if (typeof at !== 'object' || at === null || Array.isArray(at) || !Object.hasOwn(at, p)) return undefined;
    at = (at as Record<string, unknown>)[p];
  }
  return at;
}

/** The first condition of the grant that the arguments do not meet; undefined when all are met. */
function unmet(grant: McpGrant, args: unknown): string | undefined {
  for (const c of grant.arguments) {
    const value = argumentAt(args, c.path);
    if (!(typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') || !c.values.has(value)) return c.name;
  }
  return undefined;
}

/**
 * Compiles a route's `mcp:` block: name patterns into matchers, once per policy load.
 * `grants` is the policy's own role check, so tools answer to the same roles as routes.
 */
export function compileMcpRules(doc: McpRouteDocument, routeDryRun: boolean, grants: (p: Principal | undefined, permission: string) => boolean): McpRules {
  const methods = lookup(doc.rpc);
  const kinds: Record<ItemKind, (name: string) => readonly McpGrant[] | undefined> = {
    tools: lookup(doc.tools),
    prompts: lookup(doc.prompts),
    resources: lookup(doc.resources),
  };
  const hiddenPatterns = doc.hidden.map(globRegex);
  const hidden = (name: string) => hiddenPatterns.some((re) => re.test(name));
  const deny = doc.default === 'deny';
  const named = Object.keys(doc.tools).length + Object.keys(doc.prompts).length + Object.keys(doc.resources).length;

  return Object.freeze({
    dryRun: routeDryRun || doc.dryRun,
    filtersLists: deny || named > 0 || hiddenPatterns.length > 0,
    methodPermission: methods,
    hidden,
    decide(kind: ItemKind, name: string, args: unknown, principal: Principal | undefined): ItemDecision {
      const entry = kinds[kind](name);
      if (entry === undefined) return deny ? NOT_ALLOWED : ALLOWED;
      let argument: string | undefined;
      let lacking: string | undefined;
      for (const g of entry) {
        if (!grants(principal, g.permission)) {
          lacking ??= g.permission;
          continue;
        }
        const failed = unmet(g, args);
        if (failed === undefined) return { allowed: true, code: undefined, permission: g.permission };
        argument ??= failed;
        lacking ??= g.permission;
      }
      // A grant of the caller's own that only the arguments failed says more than a missing role.
      if (argument !== undefined) return { allowed: false, code: 'SIDECAR_ARGUMENTS_FORBIDDEN', permission: undefined, argument };
      return { allowed: false, code: FORBIDDEN[kind], permission: lacking };
    },
    visible(kind: ItemKind, name: string, principal: Principal | undefined): boolean {
      if (hidden(name)) return false;
      const entry = kinds[kind](name);
      if (entry === undefined) return !deny;
      return entry.some((g) => grants(principal, g.permission));
    },
  });
}
