import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Principal } from '../src/auth/principal.ts';
import { thrownBy } from './thrown.ts';
import { compilePolicy, DEFAULT_POLICY, loadPolicyFile, normalizePath, type Policy } from '../src/policy/index.ts';

const as = (...roles: string[]): Principal => ({ subject: 'u-1', roles, scopes: [], method: 'jwt' });

// The reference design's roles and route map, copied independently of src/policy/default-policy.ts.
const REFERENCE_ROLES: Record<string, string[]> = {
  admin: [
    'create:agent',
    'update:agent',
    'delete:agent',
    'view:agent',
    'view:conversation',
    'delete:conversation',
    'view:metrics',
    'view:logs',
    'view:traces',
    'manage:users',
    'manage:settings',
    'view:audit_log',
  ],
  agent_manager: ['create:agent', 'update:agent', 'delete:agent', 'view:agent', 'view:conversation', 'view:metrics', 'view:logs'],
  agent_operator: ['view:agent', 'update:agent', 'view:conversation', 'view:metrics'],
  analyst: ['view:agent', 'view:conversation', 'view:metrics', 'view:logs', 'view:traces'],
  user: ['view:conversation'],
};
const REFERENCE_ROUTES: Array<[method: string, path: string, template: string, permission: string]> = [
  ['GET', '/api/v1/agents', '/api/v1/agents', 'view:agent'],
  ['POST', '/api/v1/agents', '/api/v1/agents', 'create:agent'],
  ['GET', '/api/v1/agents/agent-42', '/api/v1/agents/{agent_id}', 'view:agent'],
  ['PUT', '/api/v1/agents/agent-42', '/api/v1/agents/{agent_id}', 'update:agent'],
  ['DELETE', '/api/v1/agents/agent-42', '/api/v1/agents/{agent_id}', 'delete:agent'],
  ['GET', '/api/v1/conversations', '/api/v1/conversations', 'view:conversation'],
  ['GET', '/api/v1/metrics', '/api/v1/metrics', 'view:metrics'],
];
const TABLE = Object.entries(REFERENCE_ROLES).flatMap(([role, perms]) =>
  REFERENCE_ROUTES.map(([method, path, template, permission]) => ({ role, method, path, template, permission, allowed: perms.includes(permission) })),
);

const dir = mkdtempSync(join(tmpdir(), 'rbac-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const errorOf = thrownBy;

describe('default policy', () => {
  const policy = loadPolicyFile();

  it('has the reference roles and no warnings', () => {
    expect(Object.fromEntries([...policy.roles].map(([r, p]) => [r, [...p].sort()]))).toEqual(
      Object.fromEntries(Object.entries(REFERENCE_ROLES).map(([r, p]) => [r, [...p].sort()])),
    );
    expect(policy.warnings).toEqual([]);
  });

  it.each(TABLE)('$role $method $path -> allowed=$allowed', ({ role, method, path, template, permission, allowed }) => {
    const d = policy.decide(method, path, as(role));
    expect(d).toMatchObject({ route: template, permission, allowed, public: false, dryRun: false });
    expect(d.code).toBe(allowed ? undefined : 'SIDECAR_FORBIDDEN');
  });

  it('serves /health without a principal, GET and HEAD only', () => {
    expect(policy.match('GET', '/health')).toMatchObject({ route: '/health', public: true, matched: true, permission: undefined });
    expect(policy.decide('GET', '/health', undefined)).toMatchObject({ allowed: true, public: true, code: undefined });
    expect(policy.decide('HEAD', '/health', undefined)).toMatchObject({ allowed: true, public: true });
    expect(policy.match('POST', '/health')).toMatchObject({ route: '/health', public: false, matched: false });
    expect(policy.decide('POST', '/health', as('admin'))).toMatchObject({ allowed: false, code: 'SIDECAR_ROUTE_NOT_ALLOWED' });
  });

  it.each([
    ['GET', '/api/v1/unknown', undefined],
    ['GET', '/', undefined],
    ['GET', '/API/v1/agents', undefined],
    ['GET', '/api/v1/agents/agent-42/runs', undefined],
    ['GET', '/healthz', undefined],
    ['PATCH', '/api/v1/agents', '/api/v1/agents'],
    ['POST', '/api/v1/agents/agent-42', '/api/v1/agents/{agent_id}'],
    ['DELETE', '/api/v1/conversations', '/api/v1/conversations'],
    ['OPTIONS', '/api/v1/metrics', '/api/v1/metrics'],
  ])('default deny: %s %s even for admin', (method, path, route) => {
    expect(policy.decide(method, path, as(...Object.keys(REFERENCE_ROLES)))).toEqual({
      route,
      permission: undefined,
      public: false,
      allowed: false,
      dryRun: false,
      code: 'SIDECAR_ROUTE_NOT_ALLOWED',
    });
    expect(policy.match(method, path)).toMatchObject({ route, matched: false, public: false });
  });

  it('authorizes HEAD as GET', () => {
    expect(policy.decide('HEAD', '/api/v1/agents/a', as('analyst'))).toMatchObject({ allowed: true, permission: 'view:agent' });
    expect(policy.decide('HEAD', '/api/v1/metrics', as('user'))).toMatchObject({ allowed: false, permission: 'view:metrics', code: 'SIDECAR_FORBIDDEN' });
  });

  it('grants when any of several roles has the permission', () => {
    expect(policy.decide('PUT', '/api/v1/agents/a', as('user', 'agent_operator')).allowed).toBe(true);
    expect(policy.decide('PUT', '/api/v1/agents/a', as('user', 'analyst')).code).toBe('SIDECAR_FORBIDDEN');
    expect(policy.hasPermission(as('user', 'admin'), 'manage:users')).toBe(true);
    expect(policy.hasPermission(undefined, 'view:agent')).toBe(false);
  });

  it('forbids a principal without roles, an unknown role and no principal', () => {
    for (const p of [as(), as('root', 'Admin', '__proto__'), undefined]) {
      expect(policy.decide('GET', '/api/v1/conversations', p)).toMatchObject({ allowed: false, code: 'SIDECAR_FORBIDDEN', permission: 'view:conversation' });
    }
  });

  it('matches literal segments: %-escapes and ?# in a path are never decoded or cut by the router', () => {
    // One literal segment `%2e%2e` is an agent id, exactly as the upstream will see it.
    expect(policy.decide('GET', '/api/v1/agents/%2e%2e', as('user')).route).toBe('/api/v1/agents/{agent_id}');
    expect(policy.decide('GET', '/api/v1/agents/a%2Fb', as('analyst'))).toMatchObject({ route: '/api/v1/agents/{agent_id}', allowed: true });
    for (const path of ['/api/v1/%61gents', '/api/v1/agents%2F1', '/health%3F', '/health#/../api', '/health?x=1', '/api/v1/agents/%2e%2e/x', 'health', '']) {
      expect(policy.decide('GET', path, undefined), path).toMatchObject({ route: undefined, code: 'SIDECAR_ROUTE_NOT_ALLOWED' });
    }
    // After the sidecar's normalization, the dot segments are gone before matching.
    const norm = (p: string) => normalizePath(p, { rejectSemicolons: true });
    expect(policy.decide('GET', norm('/api/v1/agents/%2e%2e'), as('admin')).code).toBe('SIDECAR_ROUTE_NOT_ALLOWED');
    expect(policy.decide('GET', norm('/api/v1/conversations/%2e%2e/metrics'), as('user'))).toMatchObject({
      route: '/api/v1/metrics',
      code: 'SIDECAR_FORBIDDEN',
    });
  });

  it('is the document in config/policy.example.yaml', () => {
    const example = fileURLToPath(new URL('../config/policy.example.yaml', import.meta.url));
    expect(parse(readFileSync(example, 'utf8'))).toEqual(DEFAULT_POLICY);
    const fromFile = loadPolicyFile(example);
    for (const { role, method, path } of TABLE) expect(fromFile.decide(method, path, as(role))).toEqual(policy.decide(method, path, as(role)));
  });
});

describe('templates, wildcards and options', () => {
  const policy: Policy = compilePolicy({
    roles: { reader: ['read'], writer: ['read', 'write'] },
    routes: [
      { path: '/files/*', methods: { get: 'read', '*': 'write' } },
      { path: '/files/readme', methods: { GET: 'write' } },
      { path: '/a/{x}/b/{y}', methods: { GET: 'read', HEAD: 'write' }, dryRun: true },
      { path: '/public/*', public: true },
      { path: '/', methods: { GET: 'read' } },
    ],
  });

  it('a trailing /* matches the rest, including nothing', () => {
    for (const path of ['/files', '/files/x', '/files/x/y/z', '/files/readme/more']) {
      expect(policy.decide('GET', path, as('reader')), path).toMatchObject({ route: '/files/*', allowed: true, permission: 'read' });
    }
    expect(policy.decide('GET', '/filesx', as('reader')).route).toBeUndefined();
  });

  it('a static template wins over a wildcard', () => {
    expect(policy.decide('GET', '/files/readme', as('reader'))).toMatchObject({ route: '/files/readme', code: 'SIDECAR_FORBIDDEN', permission: 'write' });
  });

  it('a * method covers the methods not listed; methods are case-sensitive at request time', () => {
    expect(policy.decide('DELETE', '/files/x', as('reader'))).toMatchObject({ permission: 'write', code: 'SIDECAR_FORBIDDEN' });
    expect(policy.decide('PROPFIND', '/files/x', as('writer')).allowed).toBe(true);
    expect(policy.decide('get', '/files/x', as('reader')).permission).toBe('write');
  });

  it('{param} matches one segment; an explicit HEAD overrides GET; dryRun is reported', () => {
    expect(policy.decide('GET', '/a/1/b/2', as('reader'))).toMatchObject({ route: '/a/{x}/b/{y}', allowed: true, dryRun: true });
    expect(policy.decide('HEAD', '/a/1/b/2', as('reader'))).toMatchObject({ allowed: false, permission: 'write', dryRun: true });
    expect(policy.decide('GET', '/a/1/2/b/3', as('writer')).code).toBe('SIDECAR_ROUTE_NOT_ALLOWED');
    expect(policy.decide('GET', '/a/1/b', as('writer')).code).toBe('SIDECAR_ROUTE_NOT_ALLOWED');
  });

  it('a public route without methods takes any method; the root is a route like others', () => {
    expect(policy.match('DELETE', '/public/x/y')).toMatchObject({ public: true, route: '/public/*' });
    expect(policy.decide('GET', '/', as('reader')).allowed).toBe(true);
  });
});

describe('invalid policies', () => {
  it.each([
    ['an unknown key', 'roles: { r: [read] }\nroutes:\n  - path: /a\n    metods: { GET: read }\n', /routes\[0\] \(\/a\).*metods/],
    ['a missing methods map', 'roles: { r: [read] }\nroutes:\n  - path: /a\n', /routes\[0\] \(\/a\)\.methods/],
    [
      'an unclosed {param}',
      'roles: { r: [read] }\nroutes:\n  - path: /a\n    methods: { GET: read }\n  - path: /a/{id\n    methods: { GET: read }\n',
      /routes\[1\] \(\/a\/\{id\)\.path/,
    ],
    ['a wildcard in the middle', 'roles: { r: [read] }\nroutes:\n  - path: /a/*/b\n    methods: { GET: read }\n', /routes\[0\] \(\/a\/\*\/b\)\.path/],
    ['a trailing slash', 'roles: { r: [read] }\nroutes:\n  - path: /a/\n    methods: { GET: read }\n', /routes\[0\] \(\/a\/\)\.path/],
    ['a percent sign', 'roles: { r: [read] }\nroutes:\n  - path: /a%41\n    methods: { GET: read }\n', /routes\[0\] \(\/a%41\)\.path/],
    [
      'the same template twice',
      'roles: { r: [read] }\nroutes:\n  - path: /a/{x}\n    methods: { GET: read }\n  - path: /a/{y}\n    methods: { PUT: read }\n',
      /routes\[1\] \(\/a\/\{y\}\)\.path.*routes\[0\]/,
    ],
    ['a method given twice', 'roles: { r: [read] }\nroutes:\n  - path: /a\n    methods: { GET: read, get: write }\n', /routes\[0\] \(\/a\)\.methods/],
    ['a bad method name', 'roles: { r: [read] }\nroutes:\n  - path: /a\n    methods: { "G T": read }\n', /routes\[0\] \(\/a\)\.methods\.G T/],
    ['a permission with a space', 'roles: { r: [read] }\nroutes:\n  - path: /a\n    methods: { GET: view agent }\n', /routes\[0\] \(\/a\)\.methods\.GET/],
    [
      'a public route with permissions',
      'roles: { r: [read] }\nroutes:\n  - path: /a\n    public: true\n    methods: { GET: read }\n',
      /routes\[0\] \(\/a\)\.methods/,
    ],
    ['roles that are not lists', 'roles:\n  admin: view:agent\nroutes: []\n', /roles\.admin/],
    ['a duplicate YAML key', 'roles: { r: [read] }\nroutes:\n  - path: /a\n    methods: { GET: read, GET: write }\n', /YAML/],
    ['an unknown top-level key', 'roles: {}\nroutes: []\nrolez: {}\n', /rolez/],
    ['an empty file', '', /top level/],
    ['a route list that is a mapping', 'roles: {}\nroutes: { path: /a }\n', /routes: expected a list/],
  ])('%s -> SIDECAR_POLICY_INVALID naming the entry', (what, body, names) => {
    const err = errorOf(() => loadPolicyFile(file(`bad-${what.replaceAll(' ', '-')}.yaml`, body)));
    expect(err.code).toBe('SIDECAR_POLICY_INVALID');
    expect(err.message).toMatch(names);
  });

  it('an unreadable file is SIDECAR_POLICY_INVALID', () => {
    expect(errorOf(() => loadPolicyFile(join(dir, 'missing.yaml'))).code).toBe('SIDECAR_POLICY_INVALID');
  });

  it('a permission that no role grants is a warning, not an error', () => {
    const policy = compilePolicy({ roles: { r: ['read'] }, routes: [{ path: '/a', methods: { GET: 'read', DELETE: 'purge' } }] });
    expect(policy.warnings).toHaveLength(1);
    expect(policy.warnings[0]).toContain('purge');
    expect(policy.decide('DELETE', '/a', as('r')).code).toBe('SIDECAR_FORBIDDEN');
  });
});
