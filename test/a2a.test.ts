/**
 * A2A routes end to end: an agent answering the A2A specification's JSON-RPC binding (both the
 * 0.3 and the 1.0 method names) behind the real sidecar; a role matrix over methods and skills,
 * dry run, the audit records, and the agent card served untouched on a public route.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, startSidecar } from './helpers.ts';

const SECRET = 'a2a-test-secret-of-at-least-32-characters!!';
// Spaces and key order as an agent writes them: the card must arrive byte for byte.
const CARD = '{"name":"Research Agent",  "version":"1.0.0","skills":[{"id":"summarize"},{"id":"admin_reset"}],"capabilities":{"streaming":false}}';
const RULES = {
  default: 'deny',
  methods: { CancelTask: 'manage:tasks', 'tasks/pushNotificationConfig/set': 'manage:tasks' },
  skills: { summarize: 'call:summarize', 'admin_*': 'manage:agent' },
};
const POLICY = {
  roles: {
    admin: ['use:a2a', 'call:summarize', 'manage:tasks', 'manage:agent'],
    user: ['use:a2a', 'call:summarize'],
    outsider: ['view:nothing'],
  },
  routes: [
    { path: '/.well-known/agent-card.json', public: true, methods: ['GET'] },
    { path: '/.well-known/agent.json', public: true, methods: ['GET'] },
    { path: '/a2a', methods: { POST: 'use:a2a' }, a2a: RULES },
    { path: '/a2a-dry', methods: { POST: 'use:a2a' }, a2a: { ...RULES, dryRun: true } },
  ],
};

let agent: Awaited<ReturnType<typeof startServer>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let dir: string;
const received: Array<{ method: string }> = [];

const token = (role: string) =>
  new SignJWT({ roles: [role] }).setProtectedHeader({ alg: 'HS256' }).setSubject(`${role}-1`).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

/** The A2A spec's JSON-RPC examples, answered: a task for a message, the task for task methods. */
function answer(rpc: { id: unknown; method: string; params?: Record<string, unknown> }): unknown {
  const task = { id: 'task-1', contextId: 'ctx-1', status: { state: 'completed' } };
  const result: Record<string, unknown> = {
    SendMessage: { task },
    'message/send': { ...task, kind: 'task' },
    GetTask: task,
    'tasks/get': { ...task, kind: 'task' },
    CancelTask: { ...task, status: { state: 'canceled' } },
    'tasks/cancel': { ...task, kind: 'task', status: { state: 'canceled' } },
    'tasks/pushNotificationConfig/set': { taskId: 'task-1', pushNotificationConfig: { url: 'https://example.com/cb' } },
  };
  if (!(rpc.method in result)) return { jsonrpc: '2.0', id: rpc.id, error: { code: -32601, message: 'Method not found' } };
  return { jsonrpc: '2.0', id: rpc.id, result: result[rpc.method] };
}

const ERROR_INFO = 'type.googleapis.com/google.rpc.ErrorInfo';
interface ErrorInfo {
  '@type': string;
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}
type ErrorData = ({ code: string } & Record<string, unknown>) | ErrorInfo[];

/** The stable code of a refusal: error.data.code (A2A 0.3), the reason of its ErrorInfo (1.0). */
const codeOf = (data: ErrorData | undefined): string | undefined => (Array.isArray(data) ? data.find((d) => d['@type'] === ERROR_INFO)?.reason : data?.code);

async function call(path: string, role: string, method: string, params: Record<string, unknown> = {}, version?: string) {
  const res = await request(`${sidecar.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token(role)}`, 'content-type': 'application/json', ...(version ? { 'a2a-version': version } : {}) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const json = (await res.body.json()) as { result?: unknown; error?: { code: number; data?: ErrorData } };
  return { status: res.statusCode, json, outcome: codeOf(json.error?.data) ?? (json.error ? `rpc ${json.error.code}` : 'ok') };
}

const message = (skillId?: string) => ({
  message: { role: 'ROLE_USER', messageId: 'm-1', parts: [{ text: 'summarize the report' }], ...(skillId ? { metadata: { skillId } } : {}) },
});

beforeAll(async () => {
  agent = await startServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/.well-known/agent-card.json' || req.url === '/.well-known/agent.json')) {
      res.writeHead(200, { 'content-type': 'application/json', etag: '"card-1"' }).end(CARD);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rpc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: unknown; method: string };
      received.push(rpc);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer(rpc)));
    });
  });
  dir = mkdtempSync(join(tmpdir(), 'a2a-policy-'));
  writeFileSync(join(dir, 'policy.yaml'), stringify(POLICY));
  sidecar = await startSidecar({ upstream: { url: agent.url }, auth: { jwt: { secret: SECRET } }, policy: { file: join(dir, 'policy.yaml') } });
});

afterAll(async () => {
  await sidecar?.close();
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('A2A routes', () => {
  it.each([
    // [role, method (1.0 name), method (0.3 name), params, outcome]
    ['user', 'SendMessage', 'message/send', message('summarize'), 'ok'],
    ['admin', 'SendMessage', 'message/send', message('admin_reset'), 'ok'],
    ['user', 'SendMessage', 'message/send', message('admin_reset'), 'SIDECAR_SKILL_FORBIDDEN'],
    ['user', 'SendMessage', 'message/send', message('unlisted'), 'SIDECAR_A2A_NOT_ALLOWED'],
    ['admin', 'SendMessage', 'message/send', message(), 'SIDECAR_A2A_NOT_ALLOWED'],
    ['user', 'GetTask', 'tasks/get', { id: 'task-1' }, 'ok'],
    ['admin', 'CancelTask', 'tasks/cancel', { id: 'task-1' }, 'ok'],
    ['user', 'CancelTask', 'tasks/cancel', { id: 'task-1' }, 'SIDECAR_A2A_METHOD_FORBIDDEN'],
  ])('%s: %s / %s -> %s', async (role, v1, v03, params, expected) => {
    for (const [method, version] of [
      [v1, '1.0'],
      [v03, undefined],
    ] as const) {
      received.length = 0;
      const r = await call('/a2a', role, method, params as Record<string, unknown>, version);
      expect(r.outcome, `${method}`).toBe(expected);
      expect(r.status).toBe(200);
      expect(received.length, `${method} forwarded`).toBe(expected === 'ok' ? 1 : 0);
      if (expected === 'SIDECAR_A2A_METHOD_FORBIDDEN') expect(r.json.error!.code).toBe(-32601);
      else if (expected !== 'ok') expect(r.json.error!.code).toBe(-32602);
      // 1.0: error.data is a list of google.rpc error details; 0.3: one object.
      if (expected !== 'ok') expect(Array.isArray(r.json.error!.data), `${method} error.data`).toBe(version === '1.0');
    }
  });

  it('answers a 1.0 refusal with a google.rpc.ErrorInfo in error.data, a 0.3 one with the code and fields', async () => {
    const v1 = await call('/a2a', 'user', 'CancelTask', { id: 'task-1' }, '1.0');
    expect(v1.json.error).toEqual({
      code: -32601,
      message: expect.any(String),
      data: [
        {
          '@type': ERROR_INFO,
          reason: 'SIDECAR_A2A_METHOD_FORBIDDEN',
          domain: 'agent-sidecar',
          metadata: { permission: 'manage:tasks', method: 'CancelTask', request_id: expect.any(String) },
        },
      ],
    });
    const v03 = await call('/a2a', 'user', 'tasks/cancel', { id: 'task-1' });
    expect(v03.json.error).toEqual({
      code: -32601,
      message: expect.any(String),
      data: { code: 'SIDECAR_A2A_METHOD_FORBIDDEN', permission: 'manage:tasks', method: 'tasks/cancel', request_id: expect.any(String) },
    });
    // Metadata holds strings only: a message naming no skill leaves skill (null) out.
    const noSkill = await call('/a2a', 'admin', 'SendMessage', message(), '1.0');
    expect(noSkill.json.error!.data).toEqual([
      { '@type': ERROR_INFO, reason: 'SIDECAR_A2A_NOT_ALLOWED', domain: 'agent-sidecar', metadata: { request_id: expect.any(String) } },
    ]);
    const skill = await call('/a2a', 'user', 'SendMessage', message('admin_reset'), '1.0');
    expect((skill.json.error!.data as ErrorInfo[])[0]!.metadata).toEqual({ skill: 'admin_reset', permission: 'manage:agent', request_id: expect.any(String) });
  });

  it.each([
    // [method, A2A-Version, ErrorInfo]
    ['SendMessage', undefined, true], // a 1.0 name: no 0.3 client sends it
    ['message/send', '1.0', true], // the version the client says it speaks decides
    ['SendMessage', '0.3', false],
    ['message/send', undefined, false], // no A2A-Version: 0.3
    ['SendMessage', 'one', true], // an unreadable version: the method name decides
  ] as const)('%s with A2A-Version %s: ErrorInfo %s', async (method, version, errorInfo) => {
    const r = await call('/a2a', 'user', method, message('admin_reset'), version);
    expect(r.outcome).toBe('SIDECAR_SKILL_FORBIDDEN');
    expect(Array.isArray(r.json.error!.data)).toBe(errorInfo);
  });

  it('a rule written with the 0.3 name covers the 1.0 name too', async () => {
    expect((await call('/a2a', 'user', 'CreateTaskPushNotificationConfig', { taskId: 'task-1' }, '1.0')).outcome).toBe('SIDECAR_A2A_METHOD_FORBIDDEN');
    expect((await call('/a2a', 'admin', 'tasks/pushNotificationConfig/set', { taskId: 'task-1' })).outcome).toBe('ok');
  });

  it('the route permission still comes first, and dry run lets a would-be refusal through, audited', async () => {
    expect((await call('/a2a', 'outsider', 'GetTask', { id: 'task-1' })).status).toBe(403);
    received.length = 0;
    expect((await call('/a2a-dry', 'user', 'SendMessage', message('admin_reset'), '1.0')).outcome).toBe('ok');
    expect(received).toHaveLength(1);
    const events = sidecar.logs.lines.filter((l) => l.event_type === 'authorization' && l.route === '/a2a-dry' && l.a2a_skill === 'admin_reset');
    expect(events.at(-1)).toMatchObject({ allowed: false, dry_run: true, reason: 'SIDECAR_SKILL_FORBIDDEN', a2a_method: 'SendMessage' });
  });

  it('refuses what it cannot read as one JSON-RPC request', async () => {
    const res = await request(`${sidecar.url}/a2a`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token('admin')}`, 'content-type': 'application/json' },
      body: '[{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t"}}]',
    });
    expect(res.statusCode).toBe(400);
    expect(((await res.body.json()) as { error: { data: { code: string } } }).error.data.code).toBe('SIDECAR_A2A_INVALID_REQUEST');
    const v1 = await request(`${sidecar.url}/a2a`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token('admin')}`, 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: '{"jsonrpc":"2.0","id":1,',
    });
    expect(v1.statusCode).toBe(400);
    expect(((await v1.body.json()) as { error: unknown }).error).toMatchObject({
      code: -32700,
      data: [{ '@type': ERROR_INFO, reason: 'SIDECAR_A2A_PARSE_ERROR', domain: 'agent-sidecar', metadata: { request_id: expect.any(String) } }],
    });
  });

  it.each(['/.well-known/agent-card.json', '/.well-known/agent.json'])('serves the agent card at %s untouched, without credentials', async (path) => {
    const res = await request(`${sidecar.url}${path}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"card-1"');
    expect(await res.body.text()).toBe(CARD);
  });
});
