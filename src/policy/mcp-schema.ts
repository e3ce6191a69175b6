import { z } from 'zod';

/** A permission a grant needs, and the argument values it is limited to (none: any arguments). */
export interface McpGrant {
  readonly permission: string;
  readonly arguments: readonly ArgumentCondition[];
}

/** `arguments: { collection: [public, research] }`: the value at `path` must be one of `values`. */
export interface ArgumentCondition {
  /** As written, for refusals and audit: collection, or filter.collection. */
  readonly name: string;
  readonly path: readonly string[];
  readonly values: ReadonlySet<string | number | boolean>;
}

/** A policy route's validated `mcp:` block. */
export interface McpRouteDocument {
  /** What no entry names: allowed with the route's permission, or refused and never listed. */
  readonly default: 'allow' | 'deny';
  readonly dryRun: boolean;
  /** JSON-RPC method (or pattern) -> the permission it needs besides the route's. */
  readonly rpc: Readonly<Record<string, string>>;
  /** Name (or pattern) -> grants, any one of which allows it. Resources are keyed by URI. */
  readonly tools: Readonly<Record<string, readonly McpGrant[]>>;
  readonly prompts: Readonly<Record<string, readonly McpGrant[]>>;
  readonly resources: Readonly<Record<string, readonly McpGrant[]>>;
  /** Names and URIs (or patterns) never listed to anyone; calls still follow the rules. */
  readonly hidden: readonly string[];
}

// As in policy/load.ts: permissions travel in refusals and audit records, printable and without spaces.
const PERMISSION = /^[\x21-\x7e]+$/;
const PERMISSION_HINT = 'expected a permission such as call:search';
const ENTRY_HINT =
  'expected a permission (search_documents: call:search), a grant ({ permission: call:search, arguments: { collection: [public] } }) or a list of grants, any one of which allows it';

const name = z.string({ error: 'expected a name; * matches any run of characters' }).min(1, 'expected a non-empty name').max(1024, 'at most 1024 characters');

type Issue = (path: PropertyKey[], message: string) => void;

function grant(value: unknown, at: PropertyKey[], issue: Issue): McpGrant | undefined {
  if (typeof value === 'string') {
    if (PERMISSION.test(value)) return { permission: value, arguments: [] };
    issue(at, PERMISSION_HINT);
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    issue(at, ENTRY_HINT);
    return undefined;
  }
  const g = value as Record<string, unknown>;
  const unknown = Object.keys(g).filter((k) => k !== 'permission' && k !== 'arguments');
  if (unknown.length > 0) issue([...at, unknown[0]!], `unknown key ${unknown.join(', ')}; a grant has permission and arguments`);
  if (typeof g.permission !== 'string' || !PERMISSION.test(g.permission)) {
    issue([...at, 'permission'], PERMISSION_HINT);
    return undefined;
  }
  const conditions: ArgumentCondition[] = [];
  if (g.arguments !== undefined) {
    if (g.arguments === null || typeof g.arguments !== 'object' || Array.isArray(g.arguments)) {
      issue([...at, 'arguments'], 'expected a mapping of argument name to the values allowed, e.g. { collection: [public, research] }');
      return undefined;
    }
    for (const [arg, values] of Object.entries(g.arguments as Record<string, unknown>)) {
      const path = arg.split('.');
      if (path.some((p) => p === ''))
        issue([...at, 'arguments', arg], 'expected an argument name, or a dot path into an object argument such as filter.collection');
      if (!Array.isArray(values) || values.length === 0 || !values.every((v) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) {
        issue([...at, 'arguments', arg], 'expected a non-empty list of the values allowed (strings, numbers or booleans), e.g. [public, research]');
        continue;
      }
      conditions.push({ name: arg, path, values: new Set(values as Array<string | number | boolean>) });
    }
  }
  return { permission: g.permission, arguments: conditions };
}

/** tools:, prompts:, resources: name -> a permission, a grant, or a list of grants. */
const entries = z
  .record(name, z.unknown(), { error: 'expected a mapping of name to permission, e.g. { search_documents: call:search, delete_*: manage:documents }' })
  .transform((record, ctx) => {
    const issue: Issue = (path, message) => ctx.addIssue({ code: 'custom', path, message });
    const out: Record<string, McpGrant[]> = {};
    for (const [key, value] of Object.entries(record)) {
      const list = Array.isArray(value) ? value : [value];
      if (list.length === 0) issue([key], ENTRY_HINT);
      const grants = list.map((v, i) => grant(v, Array.isArray(value) ? [key, i] : [key], issue)).filter((g) => g !== undefined);
      out[key] = grants;
    }
    return out as Readonly<Record<string, readonly McpGrant[]>>;
  });

/** The `mcp:` block of a policy route. */
export const mcpRouteSchema = z
  .strictObject(
    {
      default: z
        .enum(['allow', 'deny'], { error: 'expected allow (what no entry names needs only the route permission) or deny (it is refused and never listed)' })
        .default('allow'),
      dryRun: z.boolean({ error: 'expected true or false' }).default(false),
      rpc: z
        .record(name, z.string().regex(PERMISSION, PERMISSION_HINT), {
          error: 'expected a mapping of JSON-RPC method to permission, e.g. { resources/read: view:documents }',
        })
        .default({}),
      tools: entries.default({}),
      prompts: entries.default({}),
      resources: entries.default({}),
      hidden: z.array(name, { error: 'expected a list of names or URIs, e.g. [debug_*]' }).default([]),
    },
    { error: 'expected a mapping with the keys default, dryRun, rpc, tools, prompts, resources, hidden' },
  )
  .transform((m): McpRouteDocument => m);

/** The keys an `mcp:` block allows, for the policy's unknown-key message. */
export const MCP_ROUTE_KEYS = 'default, dryRun, rpc, tools, prompts, resources, hidden';
