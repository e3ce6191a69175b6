/** The mcp: block of a policy route: what it accepts, and how it names each bad entry and its fix. */
import { describe, expect, it } from 'vitest';
import { isSidecarError } from '../src/errors/index.ts';
import { compilePolicy } from '../src/policy/index.ts';

const roles = { admin: ['use:mcp', 'manage:documents'], analyst: ['use:mcp', 'call:search'] };
const route = (mcp: unknown, extra: Record<string, unknown> = {}) => ({ roles, routes: [{ path: '/mcp', methods: { POST: 'use:mcp' }, mcp, ...extra }] });

function problems(doc: unknown): string[] {
  try {
    compilePolicy(doc, 'policy.yaml');
  } catch (err) {
    if (isSidecarError(err) && err.code === 'SIDECAR_POLICY_INVALID') return (err.details?.problems as string[]) ?? [];
    throw err;
  }
  return [];
}

describe('policy routes with an mcp: block', () => {
  it('compiles permissions, grants and lists of grants', () => {
    const policy = compilePolicy(
      route({
        default: 'deny',
        tools: { 'delete_*': 'manage:documents', search: [{ permission: 'call:search', arguments: { 'filter.collection': ['public', 1, true] } }] },
        hidden: ['internal_*'],
      }),
    );
    const rules = policy.mcp('/mcp')!;
    expect(policy.hasMcp).toBe(true);
    const analyst = { subject: 'a', roles: ['analyst'], scopes: [], method: 'jwt' as const };
    expect(rules.decide('tools', 'search', { filter: { collection: 'public' } }, analyst).allowed).toBe(true);
    expect(rules.decide('tools', 'search', { filter: { collection: 'other' } }, analyst)).toMatchObject({
      code: 'SIDECAR_ARGUMENTS_FORBIDDEN',
      argument: 'filter.collection',
    });
    expect(rules.decide('tools', 'delete_all', {}, analyst)).toMatchObject({ code: 'SIDECAR_TOOL_FORBIDDEN', permission: 'manage:documents' });
    expect(rules.decide('tools', 'other', {}, analyst)).toMatchObject({ code: 'SIDECAR_MCP_NOT_ALLOWED' });
    expect(rules.visible('tools', 'internal_x', analyst)).toBe(false);
    expect(compilePolicy(route(undefined)).hasMcp).toBe(false);
  });

  it.each([
    [{ tools: { search: 'has space' } }, 'routes[0] (/mcp).mcp.tools.search: expected a permission such as call:search'],
    [
      { tools: { search: [{ permission: 'call:search', arguments: { collection: [] } }] } },
      'routes[0] (/mcp).mcp.tools.search[0].arguments.collection: expected a non-empty list',
    ],
    [
      { tools: { search: { permission: 'call:search', argument: {} } } },
      'routes[0] (/mcp).mcp.tools.search.argument: unknown key argument; a grant has permission and arguments',
    ],
    [{ tools: { search: 42 } }, 'routes[0] (/mcp).mcp.tools.search: expected a permission (search_documents: call:search), a grant'],
    [{ default: 'maybe' }, 'routes[0] (/mcp).mcp.default: expected allow'],
    [{ tool: {} }, 'routes[0] (/mcp).mcp: unknown key tool; allowed here: default, dryRun, rpc, tools, prompts, resources, hidden'],
    [{ hidden: 'internal_*' }, 'routes[0] (/mcp).mcp.hidden: expected a list of names or URIs'],
  ])('refuses %j: %s', (mcp, expected) => {
    expect(problems(route(mcp)).join('\n')).toContain(expected);
  });

  it('refuses an mcp: block on a public route, and one without POST', () => {
    expect(problems({ roles, routes: [{ path: '/mcp', public: true, mcp: {} }] }).join('\n')).toContain(
      'routes[0] (/mcp).mcp: an MCP route decides per caller, so it cannot be public',
    );
    expect(problems({ roles, routes: [{ path: '/mcp', methods: { GET: 'use:mcp' }, mcp: {} }] }).join('\n')).toContain(
      'routes[0] (/mcp).methods: an MCP route receives its messages by POST',
    );
  });

  it('warns of a tool whose permission no role grants', () => {
    expect(compilePolicy(route({ tools: { nuke: 'launch:nukes' } })).warnings.join('\n')).toContain(
      'routes[0] (/mcp).mcp.tools.nuke needs a permission no role grants',
    );
  });
});
