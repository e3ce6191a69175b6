/**
 * A2A with the official SDK (@a2a-js/sdk, A2A 1.0, JSON-RPC binding) on both ends: its server
 * (AgentExecutor, DefaultRequestHandler, the Express JSON-RPC and agent-card handlers) as the
 * agent behind the sidecar's ingress and as a peer behind the egress listener, and its client
 * (ClientFactory, JsonRpcTransportFactory) as the caller of each. What the SDK puts on the wire
 * (method names, A2A-Version, message shape, errors) is what the sidecar judges here.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentCard, Message, type SendMessageResult } from '@a2a-js/sdk';
import { ClientFactory, createAuthenticatingFetchWithRetry, DefaultAgentCardResolver, JsonRpcTransportFactory, type Client } from '@a2a-js/sdk/client';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore, type AgentExecutor } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, startSidecar } from './helpers.ts';

// The SDK's server transports are Express middleware. express comes without type declarations,
// so it is loaded through require, typed only as far as this test uses it.
type ExpressApp = ((req: IncomingMessage, res: ServerResponse) => void) & { use(path: string, ...handlers: unknown[]): unknown };
const express = createRequire(import.meta.url)('express') as () => ExpressApp;

const SECRET = 'a2a-sdk-test-secret-of-at-least-32-characters!';
const POLICY = {
  roles: {
    admin: ['use:a2a', 'call:summarize', 'manage:tasks', 'manage:agent'],
    user: ['use:a2a', 'call:summarize'],
  },
  routes: [
    { path: '/.well-known/agent-card.json', public: true, methods: ['GET'] },
    {
      path: '/a2a',
      methods: { POST: 'use:a2a' },
      a2a: { default: 'deny', methods: { CancelTask: 'manage:tasks' }, skills: { summarize: 'call:summarize', 'admin_*': 'manage:agent' } },
    },
  ],
};

/**
 * An SDK agent: every message is answered with a message of its own; its JSON-RPC endpoint at
 * /a2a and its card at the well-known path. Counts what reaches it: HTTP POSTs, executions and
 * cancellations. `endpoint` is the URL its card advertises (set once the sidecar listens).
 */
async function startSdkAgent(name: string) {
  const seen = { posts: 0, executed: [] as string[], canceled: [] as string[] };
  const card = AgentCard.fromJSON({
    name,
    description: 'summarizes what it is sent',
    version: '1.0.0',
    supportedInterfaces: [{ url: 'http://placeholder.invalid/a2a', protocolBinding: 'JSONRPC', protocolVersion: '1.0' }],
    capabilities: { streaming: true },
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [
      { id: 'summarize', name: 'Summarize', description: 'summarizes a text', tags: ['text'] },
      { id: 'admin_reset', name: 'Reset', description: 'forgets everything', tags: ['admin'] },
    ],
  });
  const executor: AgentExecutor = {
    async execute(ctx, bus) {
      const text = ctx.userMessage.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join('');
      seen.executed.push(text);
      bus.publish(
        AgentEvent.message(
          Message.fromJSON({
            messageId: `answer-${seen.executed.length}`,
            contextId: ctx.contextId,
            role: 'ROLE_AGENT',
            parts: [{ text: `${name}: ${text}` }],
          }),
        ),
      );
      bus.finished();
    },
    async cancelTask(taskId, bus) {
      seen.canceled.push(taskId);
      bus.finished();
    },
  };
  const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), executor);
  const app = express();
  app.use('/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: handler }));
  app.use('/a2a', (req: IncomingMessage, _res: ServerResponse, next: () => void) => {
    if (req.method === 'POST') seen.posts++;
    next();
  });
  app.use('/a2a', jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
  const http = await startServer(app);
  const advertise = (endpoint: string) => {
    card.supportedInterfaces[0]!.url = endpoint;
  };
  return { ...http, seen, advertise };
}

const token = (role: string) =>
  new SignJWT({ roles: [role] }).setProtectedHeader({ alg: 'HS256' }).setSubject(`${role}-1`).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

/** The SDK client; with a role, every request carries that role's bearer token. */
function factory(role?: string): ClientFactory {
  const fetchImpl =
    role === undefined
      ? fetch
      : createAuthenticatingFetchWithRetry(fetch, {
          headers: async () => ({ authorization: `Bearer ${await token(role)}` }),
          shouldRetryWithHeaders: async () => undefined,
        });
  return new ClientFactory({ transports: [new JsonRpcTransportFactory({ fetchImpl })] });
}

const send = (text: string, skillId?: string) => ({
  tenant: '',
  message: Message.fromJSON({ messageId: `m-${text}`, role: 'ROLE_USER', parts: [{ text }], ...(skillId ? { metadata: { skillId } } : {}) }),
  configuration: undefined,
  metadata: undefined,
});

const textOf = (r: SendMessageResult) => ('parts' in r ? r.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join('') : undefined);

/** The error the SDK client throws for a JSON-RPC error: the envelope's code and data. */
async function refusal(call: Promise<unknown>): Promise<{ envelopeCode: number; data: unknown }> {
  const err = (await call.then(
    () => undefined,
    (e: unknown) => e,
  )) as { envelopeCode: number; data: unknown } | undefined;
  expect(err, 'the call was refused').toBeDefined();
  return err!;
}

/** The google.rpc.ErrorInfo of a sidecar refusal to an A2A 1.0 client. */
const errorInfo = (reason: string, metadata: unknown) => ({ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: 'agent-sidecar', metadata });

let agent: Awaited<ReturnType<typeof startSdkAgent>>;
let peer: Awaited<ReturnType<typeof startSdkAgent>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let dir: string;

beforeAll(async () => {
  agent = await startSdkAgent('Research Agent');
  peer = await startSdkAgent('Planner');
  dir = mkdtempSync(join(tmpdir(), 'a2a-sdk-policy-'));
  writeFileSync(join(dir, 'policy.yaml'), stringify(POLICY));
  sidecar = await startSidecar({
    upstream: { url: agent.url },
    auth: { jwt: { secret: SECRET } },
    policy: { file: join(dir, 'policy.yaml') },
    egress: { allowHttp: true, agents: { planner: { origin: peer.url, methods: ['SendMessage', 'GetTask'] } } },
  });
  // Deployed behind the sidecar, the agent's public endpoint is the sidecar's.
  agent.advertise(`${sidecar.url}/a2a`);
  peer.advertise(`${peer.url}/a2a`);
});

afterAll(async () => {
  await sidecar?.close();
  await agent?.close();
  await peer?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the A2A SDK client calling an SDK agent through the ingress', () => {
  let user: Client;
  let admin: Client;
  beforeAll(async () => {
    user = await factory('user').createFromUrl(sidecar.url);
    admin = await factory('admin').createFromUrl(sidecar.url);
  });

  it('resolves the agent card through the sidecar, served untouched and without credentials', async () => {
    const direct = await request(`${agent.url}/.well-known/agent-card.json`);
    const through = await request(`${sidecar.url}/.well-known/agent-card.json`);
    expect(through.statusCode).toBe(200);
    expect(direct.headers.etag).toBeDefined();
    expect(through.headers.etag).toBe(direct.headers.etag);
    expect(through.headers['cache-control']).toBe(direct.headers['cache-control']);
    expect(await through.body.text()).toBe(await direct.body.text());
    const card = await new DefaultAgentCardResolver().resolve(sidecar.url);
    expect(card.name).toBe('Research Agent');
    expect(card.skills.map((s) => s.id)).toEqual(['summarize', 'admin_reset']);
    expect(card.supportedInterfaces[0]).toMatchObject({ url: `${sidecar.url}/a2a`, protocolBinding: 'JSONRPC', protocolVersion: '1.0' });
    expect(user.protocolVersion).toBe('1.0');
  });

  it('passes an allowed SendMessage to the agent and returns its answer', async () => {
    const before = agent.seen.executed.length;
    const answer = await user.sendMessage(send('the quarterly report', 'summarize'));
    expect(textOf(answer)).toBe('Research Agent: the quarterly report');
    expect(agent.seen.executed.slice(before)).toEqual(['the quarterly report']);
    const audit = sidecar.logs.lines.filter((l) => l.event_type === 'authorization' && l.a2a_skill === 'summarize');
    expect(audit.at(-1)).toMatchObject({ allowed: true, a2a_method: 'SendMessage', route: '/a2a' });
  });

  it('passes a streamed SendStreamingMessage too', async () => {
    const events = [];
    for await (const event of user.sendMessageStream(send('the minutes', 'summarize'))) events.push(event);
    expect(events).toHaveLength(1);
    expect(events[0]!.payload).toMatchObject({ $case: 'message' });
    expect(agent.seen.executed.at(-1)).toBe('the minutes');
  });

  it.each([
    // [what, role, call, code, JSON-RPC code]
    ['a skill the role may not use', 'user', (c: Client) => c.sendMessage(send('everything', 'admin_reset')), 'SIDECAR_SKILL_FORBIDDEN', -32602],
    ['a skill no rule names', 'user', (c: Client) => c.sendMessage(send('everything', 'unlisted')), 'SIDECAR_A2A_NOT_ALLOWED', -32602],
    ['a message naming no skill (default: deny)', 'admin', (c: Client) => c.sendMessage(send('everything')), 'SIDECAR_A2A_NOT_ALLOWED', -32602],
    [
      'a streamed message with a forbidden skill',
      'user',
      (c: Client) => c.sendMessageStream(send('everything', 'admin_reset')).next(),
      'SIDECAR_SKILL_FORBIDDEN',
      -32602,
    ],
    [
      'a method the role may not use',
      'user',
      (c: Client) => c.cancelTask({ tenant: '', id: 'task-1', metadata: undefined }),
      'SIDECAR_A2A_METHOD_FORBIDDEN',
      -32601,
    ],
  ] as const)('refuses %s with the JSON-RPC error, never reaching the agent', async (_what, role, call, code, rpcCode) => {
    const client = role === 'user' ? user : admin;
    const before = { ...agent.seen, executed: agent.seen.executed.length, canceled: agent.seen.canceled.length };
    const err = await refusal(call(client));
    expect(err.envelopeCode).toBe(rpcCode);
    // The SDK speaks 1.0: error.data is a list of google.rpc error details, the code the ErrorInfo's reason.
    expect(err.data).toEqual([errorInfo(code, expect.objectContaining({ request_id: expect.any(String) }))]);
    expect(agent.seen.posts).toBe(before.posts);
    expect(agent.seen.executed).toHaveLength(before.executed);
    expect(agent.seen.canceled).toHaveLength(before.canceled);
  });

  it("lets a role with the permission call the method: the agent's own answer comes back", async () => {
    const before = agent.seen.posts;
    const err = await refusal(admin.cancelTask({ tenant: '', id: 'task-1', metadata: undefined }));
    // The SDK agent has no such task: TaskNotFoundError (-32001), its answer, not the sidecar's.
    expect(err.envelopeCode).toBe(-32001);
    expect(err.data).toEqual([expect.objectContaining({ reason: 'TASK_NOT_FOUND' })]);
    expect(agent.seen.posts).toBe(before + 1);
  });

  it('refuses a caller without a token before anything is read', async () => {
    const anonymous = await factory().createFromUrl(sidecar.url);
    const before = agent.seen.posts;
    await expect(anonymous.sendMessage(send('hello', 'summarize'))).rejects.toThrow(/401/);
    expect(agent.seen.posts).toBe(before);
  });
});

describe('the A2A SDK client as the agent’s outbound client through the egress listener', () => {
  let planner: Client;
  beforeAll(async () => {
    const route = `${sidecar.egressUrl}/a2a/planner`;
    // The card comes through the route (the SDK resolves the card's path relative to the base URL,
    // so a base with a path needs its trailing slash); the card names the peer itself, so the
    // client is pointed at the route.
    const card = await new DefaultAgentCardResolver().resolve(`${route}/`);
    expect(card.name).toBe('Planner');
    expect(card.supportedInterfaces[0]!.url).toBe(`${peer.url}/a2a`);
    card.supportedInterfaces[0]!.url = `${route}/a2a`;
    planner = await factory().createFromAgentCard(card);
  });

  it('passes a method on the allowlist to the peer and returns its answer', async () => {
    const before = peer.seen.posts;
    const answer = await planner.sendMessage(send('a trip to Lyon'));
    expect(textOf(answer)).toBe('Planner: a trip to Lyon');
    expect(peer.seen.posts).toBe(before + 1);
    expect(peer.seen.executed.at(-1)).toBe('a trip to Lyon');
  });

  it.each([
    ['CancelTask', (c: Client) => c.cancelTask({ tenant: '', id: 'task-1', metadata: undefined })],
    ['SendStreamingMessage', (c: Client) => c.sendMessageStream(send('a trip to Lyon')).next()],
  ] as const)('refuses %s, off the allowlist, without reaching the peer', async (method, call) => {
    const before = { posts: peer.seen.posts, executed: peer.seen.executed.length, canceled: peer.seen.canceled.length };
    const err = await refusal(call(planner));
    expect(err.envelopeCode).toBe(-32601);
    expect(err.data).toEqual([errorInfo('SIDECAR_A2A_METHOD_NOT_ALLOWED', { method, peer: 'planner', request_id: expect.any(String) })]);
    expect(peer.seen.posts).toBe(before.posts);
    expect(peer.seen.executed).toHaveLength(before.executed);
    expect(peer.seen.canceled).toHaveLength(before.canceled);
  });
});
