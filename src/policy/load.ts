import { z } from 'zod';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readTextCapped } from '../files/index.ts';
import { parseYaml, YamlError } from '../files/index.ts';
import { A2A_ROUTE_KEYS, a2aRouteSchema } from './a2a-rules.ts';
import { MCP_ROUTE_KEYS, mcpRouteSchema } from './mcp-schema.ts';
import { DEFAULT_POLICY } from './default-policy.ts';
import { buildPolicy, canonical, type Policy, type PolicyDocument, type PolicyRoute } from './rbac.ts';

// RFC 9110 5.6.2 token: what a method name may be.
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Permissions and roles travel in 403 bodies, audit records and identity headers: printable, no spaces.
const NAME = /^[\x21-\x7e]+$/;
// Literal template segments: RFC 3986 pchar minus `%` (the router would decode it), `:` (its
// parameter syntax), `*`, `(`, `)` (its wildcard and regex syntax).
const LITERAL = /^[A-Za-z0-9._~!$&'+,;=@-]+$/;
const PARAM = /^\{[A-Za-z_][A-Za-z0-9_]*\}$/;

const name = (what: string) => z.string().regex(NAME, `expected a ${what} name without spaces, such as view:agent`);

/** Why a template is refused, or undefined when it is fine. */
function templateProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'a path template starts with /';
  if (path === '/') return undefined;
  const segments = path.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '*' && i === segments.length - 1) continue;
    if (s === '') return 'empty segments (//) and a trailing / never match: paths are normalized before matching';
    if (s === '.' || s === '..') return 'dot segments never match: paths are normalized before matching';
    if (s === '*') return 'the wildcard * may only be the last segment (/prefix/*)';
    if (!PARAM.test(s) && !LITERAL.test(s)) {
      return `segment "${s}" is neither a literal (letters, digits and -._~!$&'+,;=@) nor a whole-segment {param}`;
    }
  }
  return undefined;
}

const route = z
  .strictObject({
    path: z.string().superRefine((p, ctx) => {
      const problem = templateProblem(p);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `${problem}; for example /api/v1/agents/{agent_id} or /static/*` });
    }),
    methods: z.unknown().optional(),
    public: z.boolean({ error: 'expected true or false' }).default(false),
    dryRun: z.boolean({ error: 'expected true or false' }).default(false),
    mcp: mcpRouteSchema.optional(),
    a2a: a2aRouteSchema.optional(),
  })
  .transform((r, ctx): PolicyRoute => {
    const bad = (path: PropertyKey[], message: string): never => {
      ctx.addIssue({ code: 'custom', path, message });
      return z.NEVER;
    };
    const method = (m: unknown, at: PropertyKey[]): string | undefined => {
      if (typeof m === 'string' && (m === '*' || METHOD.test(m))) return m.toUpperCase();
      ctx.addIssue({ code: 'custom', path: at, message: 'expected an HTTP method such as GET, or * for any method' });
      return undefined;
    };
    if (r.public && r.mcp !== undefined)
      return bad(
        ['mcp'],
        'an MCP route decides per caller, so it cannot be public: remove public: true and give it methods, e.g. { POST: use:mcp, GET: use:mcp }',
      );
    if (r.public && r.a2a !== undefined)
      return bad(
        ['a2a'],
        'an A2A route decides per caller, so it cannot be public: remove public: true and give it methods, e.g. { POST: use:a2a }; the agent card gets a public route of its own',
      );
    if (r.mcp !== undefined && r.a2a !== undefined) return bad(['a2a'], 'a route speaks MCP or A2A, not both: give each endpoint its own route');
    if (r.public) {
      if (r.methods === undefined) return { path: r.path, public: true, dryRun: r.dryRun, methods: undefined };
      if (!Array.isArray(r.methods))
        return bad(['methods'], 'a public route needs no permission: list its methods (methods: [GET]) or leave methods out for any method');
      const list = r.methods.map((m, i) => method(m, ['methods', i]) ?? '');
      return { path: r.path, public: true, dryRun: r.dryRun, methods: list.includes('*') ? undefined : [...new Set(list)] };
    }
    if (r.methods === null || typeof r.methods !== 'object' || Array.isArray(r.methods)) {
      return bad(['methods'], 'expected a mapping of HTTP method to permission, e.g. { GET: view:agent, POST: create:agent }; or public: true');
    }
    const methods: Record<string, string> = {};
    for (const [key, permission] of Object.entries(r.methods as Record<string, unknown>)) {
      const m = method(key, ['methods', key]);
      if (m === undefined) continue;
      if (Object.hasOwn(methods, m)) bad(['methods', key], `${m} is given twice (method names are case-insensitive here)`);
      if (typeof permission !== 'string' || !NAME.test(permission)) bad(['methods', key], 'expected a permission such as view:agent');
      methods[m] = permission as string;
    }
    if (Object.keys(methods).length === 0) return bad(['methods'], 'a protected route needs at least one method, e.g. { GET: view:agent }');
    if (r.mcp !== undefined && methods.POST === undefined && methods['*'] === undefined) {
      return bad(['methods'], 'an MCP route receives its messages by POST: add POST (and GET for server streams), e.g. { POST: use:mcp, GET: use:mcp }');
    }
    if (r.a2a !== undefined && methods.POST === undefined && methods['*'] === undefined) {
      return bad(['methods'], 'an A2A route receives its JSON-RPC requests by POST: add POST, e.g. { POST: use:a2a }');
    }
    return { path: r.path, public: false, dryRun: r.dryRun, methods, mcp: r.mcp, a2a: r.a2a };
  });

const roles = z.record(name('role'), z.array(name('permission'), { error: 'expected a list of permissions, e.g. [view:agent, view:conversation]' }), {
  error: 'expected a mapping of role name to its permissions, e.g. admin: [create:agent, view:agent]',
});

const routes = z.array(route, { error: 'expected a list of routes, e.g. - path: /api/v1/agents' }).superRefine((list, ctx) => {
  const seen = new Map<string, number>();
  list.forEach((r, i) => {
    const key = canonical(r.path);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else
      ctx.addIssue({
        code: 'custom',
        path: [i, 'path'],
        message: `matches the same paths as routes[${first}] (${list[first]!.path}); merge their methods into one entry`,
      });
  });
});

const policySchema = z.strictObject({ roles, routes }, { error: 'expected a mapping with the keys roles and routes' });

/** What a policy file may contain. */
export type PolicyDocumentInput = z.input<typeof policySchema>;
/** The built-in policy, checked against the schema's input type here. */
const BUILT_IN: PolicyDocumentInput = DEFAULT_POLICY;

/**
 * Validates a parsed policy document (YAML or an object) and compiles it.
 * Throws SidecarError('SIDECAR_POLICY_INVALID') naming each bad entry and what it allows.
 *
 * @example compilePolicy({ roles: { admin: ['view:agent'] }, routes: [{ path: '/a', methods: { GET: 'view:agent' } }] })
 */
export function compilePolicy(doc: unknown, source = 'the policy'): Policy {
  const result = policySchema.safeParse(doc);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => describeIssue(issue, doc));
    throw new SidecarError('SIDECAR_POLICY_INVALID', {
      message: `${source} is not a valid policy:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      details: { problems },
    });
  }
  const parsed: PolicyDocument = result.data;
  return buildPolicy(parsed, source, ungranted(parsed));
}

/**
 * Reads and compiles a YAML policy file; without a path, the built-in default policy (the
 * reference roles and routes, see config/policy.example.yaml).
 */
export function loadPolicyFile(path?: string): Policy {
  if (path === undefined) return compilePolicy(BUILT_IN, 'built-in default policy');
  return compilePolicyText(readPolicyFile(path), path);
}

/** The file's text; an unreadable file is SIDECAR_POLICY_INVALID like a bad one. */
export function readPolicyFile(path: string): string {
  try {
    return readTextCapped(path, FILE_LIMITS.policy);
  } catch (cause) {
    throw new SidecarError('SIDECAR_POLICY_INVALID', { message: `cannot read the policy file ${path} (policy.file): ${(cause as Error).message}`, cause });
  }
}

/** Parses YAML text and compiles it (compilePolicy). */
export function compilePolicyText(text: string, source: string): Policy {
  // Duplicate keys are errors: a second `GET:` silently replacing the first is a policy bug.
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    if (!(err instanceof YamlError)) throw err;
    throw new SidecarError('SIDECAR_POLICY_INVALID', { message: `${source} is not valid YAML:\n${err.problems.map((p) => `  - ${p}`).join('\n')}` });
  }
  return compilePolicy(doc, source);
}

/** Permissions that routes require but no role grants: nobody can ever pass those rules. */
function ungranted(doc: PolicyDocument): string[] {
  const granted = new Set(Object.values(doc.roles).flat());
  const warnings: string[] = [];
  doc.routes.forEach((r, i) => {
    if (r.public) return;
    for (const [m, permission] of Object.entries(r.methods)) {
      if (!granted.has(permission)) warnings.push(`routes[${i}] (${r.path}) ${m} needs ${permission}, which no role grants: the rule denies everyone`);
    }
    if (r.mcp === undefined) return;
    for (const [method, permission] of Object.entries(r.mcp.rpc)) {
      if (!granted.has(permission))
        warnings.push(`routes[${i}] (${r.path}).mcp.rpc.${method} needs ${permission}, which no role grants: the rule denies everyone`);
    }
    for (const kind of ['tools', 'prompts', 'resources'] as const) {
      for (const [name, grants] of Object.entries(r.mcp[kind])) {
        if (!grants.some((g) => granted.has(g.permission)))
          warnings.push(`routes[${i}] (${r.path}).mcp.${kind}.${name} needs a permission no role grants: it is refused to everyone`);
      }
    }
  });
  return warnings;
}

const ALLOWED_KEYS: Record<string, string> = {
  '': 'roles, routes',
  routes: 'path, methods, public, dryRun, mcp, a2a',
  mcp: MCP_ROUTE_KEYS,
  a2a: A2A_ROUTE_KEYS,
};

function describeIssue(issue: z.core.$ZodIssue, doc: unknown): string {
  const at = where(issue.path, doc);
  if (issue.code === 'unrecognized_keys') {
    const section = issue.path[2] === 'mcp' || issue.path[2] === 'a2a' ? issue.path[2] : issue.path[0];
    const allowed = ALLOWED_KEYS[typeof section === 'string' ? section : ''] ?? '';
    return `${at}: unknown key ${issue.keys.join(', ')}; allowed here: ${allowed}`;
  }
  if (issue.code === 'invalid_key') return `${at}: role names are printable characters without spaces`;
  return `${at}: ${issue.message}`;
}

/** routes[1] (/api/v1/agents/{agent_id}).methods.GET: the index and the template, so both find it. */
function where(path: readonly PropertyKey[], doc: unknown): string {
  if (path.length === 0) return '(top level)';
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out === '' ? '' : '.'}${String(p)}`;
  if (path[0] === 'routes' && typeof path[1] === 'number') {
    const entry = (doc as { routes?: Array<{ path?: unknown }> } | undefined)?.routes?.[path[1]];
    if (typeof entry?.path === 'string') out = out.replace(`routes[${path[1]}]`, `routes[${path[1]}] (${entry.path})`);
  }
  return out;
}
