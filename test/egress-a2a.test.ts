import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryAudit } from '../src/audit/index.ts';
import { validateConfig } from '../src/config/index.ts';
import { createEgress, type Egress } from '../src/egress/index.ts';
import { createLogger } from '../src/log/index.ts';
import { startServer } from './helpers.ts';

/**
 * An A2A peer speaking the JSON-RPC binding as the specification's examples do (0.3 and 1.0
 * method names): a task for message/send, task status events on an SSE stream for
 * message/stream, -32601 for a method it does not have; its agent card at the well-known paths.
 * Every POST's bytes are recorded.
 */
// Odd spacing and key order: a card re-serialized on the way would not match.
const CARD = '{ "name":"Planner",  "url":"http://peer.example/a2a", "skills":[{"id":"plan","name":"Plan"}], "protocolVersion":"0.3.0" }';

async function startPeer() {
  const posts: Buffer[] = [];
  const task = (id: unknown, state: string) => ({ jsonrpc: '2.0', id, result: { kind: 'task', id: 't-1', contextId: 'c-1', status: { state } } });
  const http = await startServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET' && (req.url === '/.well-known/agent-card.json' || req.url === '/.well-known/agent.json')) {
        res.writeHead(200, { 'content-type': 'application/json', etag: '"card-1"' }).end(CARD);
        return;
      }
      const raw = Buffer.concat(chunks);
      posts.push(raw);
      const msg = JSON.parse(raw.toString('utf8')) as { id: unknown; method: string };
      switch (msg.method) {
        case 'message/send':
        case 'SendMessage':
        case 'tasks/get':
        case 'GetTask':
        case 'tasks/cancel':
        case 'CancelTask':
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(task(msg.id, msg.method.includes('ancel') ? 'canceled' : 'completed')));
          return;
        case 'message/stream':
        case 'SendStreamingMessage':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(`data: ${JSON.stringify(task(msg.id, 'working'))}\n\n`);
          res.end(
            `data: ${JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { kind: 'status-update', taskId: 't-1', status: { state: 'completed' }, final: true } })}\n\n`,
          );
          return;
        default:
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'Method not found' } }));
      }
    });
  });
  return { ...http, posts };
}

let peer: Awaited<ReturnType<typeof startPeer>>;
let egress: Egress;
let url: string;
const audit = createMemoryAudit();

beforeAll(async () => {
  peer = await startPeer();
  const config = validateConfig({
    egress: {
      allowHttp: true,
      agents: {
        planner: { origin: peer.url, methods: ['message/send', 'SendStreamingMessage', 'GetTask'] },
        open: { origin: peer.url },
      },
    },
  });
  const logger = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
  egress = createEgress(config, logger, { agentType: 'a2a-egress-test', audit });
  egress.server.listen(0, '127.0.0.1');
  await once(egress.server, 'listening');
  url = `http://127.0.0.1:${(egress.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  egress?.destroyAll();
  egress?.server.close();
  await egress?.close();
  await peer?.close();
});

const send = (id: number, method: string) =>
  `{"jsonrpc":"2.0", "id":${id}, "method":"${method}", "params":{"message":{"role":"user","parts":[{"kind":"text","text":"plan a trip"}],"messageId":"m-${id}"}}}`;

/** The google.rpc.ErrorInfo of an A2A 1.0 refusal: the stable code as reason, the fields and request_id as metadata. */
const errorInfo = (reason: string, metadata: Record<string, string>) => ({
  '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
  reason,
  domain: 'agent-sidecar',
  metadata: { ...metadata, request_id: expect.any(String) },
});

async function call(route: string, body: string, headers: Record<string, string> = {}) {
  const res = await request(`${url}${route}/`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
  });
  return { status: res.statusCode, type: res.headers['content-type'], text: await res.body.text() };
}

describe('an A2A peer behind the egress listener', () => {
  it.each([
    ['message/send', true],
    ['SendMessage', true],
    ['tasks/get', true],
    ['GetTask', true],
    ['tasks/cancel', false],
    ['CancelTask', false],
    ['tasks/pushNotificationConfig/set', false],
  ] as const)('%s is %s by the method allowlist (either revision’s name)', async (method, allowed) => {
    peer.posts.splice(0);
    const body = send(7, method);
    const { text } = await call('/a2a/planner', body);
    const answer = JSON.parse(text) as { result?: unknown; error?: { code: number; data: unknown } };
    if (allowed) {
      expect(answer.result).toBeDefined();
      // Forwarded as the very bytes the agent sent.
      expect(peer.posts.map((p) => p.toString('utf8'))).toEqual([body]);
    } else if (method.includes('/')) {
      // A 0.3 call (no A2A-Version, a 0.3 name): error.data is the code and the fields.
      expect(answer.error).toMatchObject({
        code: -32601,
        data: { code: 'SIDECAR_A2A_METHOD_NOT_ALLOWED', method, peer: 'planner', request_id: expect.any(String) },
      });
      expect(peer.posts).toHaveLength(0);
    } else {
      // A 1.0 call: error.data is a list of google.rpc error details.
      expect(answer.error).toMatchObject({ code: -32601, data: [errorInfo('SIDECAR_A2A_METHOD_NOT_ALLOWED', { method, peer: 'planner' })] });
      expect(peer.posts).toHaveLength(0);
    }
  });

  it('answers by the A2A-Version the agent sends: 1.0 with a google.rpc.ErrorInfo, 0.3 with the code and fields', async () => {
    const v1 = JSON.parse((await call('/a2a/planner', send(11, 'tasks/cancel'), { 'a2a-version': '1.0' })).text) as { error: unknown };
    expect(v1.error).toEqual({
      code: -32601,
      message: expect.any(String),
      data: [errorInfo('SIDECAR_A2A_METHOD_NOT_ALLOWED', { method: 'tasks/cancel', peer: 'planner' })],
    });
    const v03 = JSON.parse((await call('/a2a/planner', send(12, 'CancelTask'), { 'a2a-version': '0.3' })).text) as { error: unknown };
    expect(v03.error).toEqual({
      code: -32601,
      message: expect.any(String),
      data: { code: 'SIDECAR_A2A_METHOD_NOT_ALLOWED', method: 'CancelTask', peer: 'planner', request_id: expect.any(String) },
    });
  });

  it('relays a streamed answer event by event', async () => {
    const { type, text } = await call('/a2a/planner', send(8, 'message/stream'));
    expect(type).toBe('text/event-stream');
    expect(text.match(/^data: /gm)).toHaveLength(2);
    expect(text).toContain('"final":true');
  });

  it('lets every method through to a peer without an allowlist, and audits each call', async () => {
    audit.events.splice(0);
    expect(JSON.parse((await call('/a2a/open', send(9, 'tasks/cancel'))).text)).toMatchObject({ result: { status: { state: 'canceled' } } });
    await call('/a2a/planner', send(10, 'CancelTask'));
    expect(audit.events).toEqual([
      expect.objectContaining({ event_type: 'authorization', egress_peer: 'open', a2a_method: 'tasks/cancel', allowed: true, route: '/a2a/open' }),
      expect.objectContaining({
        egress_peer: 'planner',
        a2a_method: 'CancelTask',
        allowed: false,
        reason: 'SIDECAR_A2A_METHOD_NOT_ALLOWED',
        action: 'egress.agents.planner.methods',
      }),
    ]);
  });

  it.each(['/.well-known/agent-card.json', '/.well-known/agent.json'])('relays the agent card at %s untouched', async (path) => {
    const res = await request(`${url}/a2a/planner${path}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"card-1"');
    expect(await res.body.text()).toBe(CARD);
  });

  it('refuses a POST that is not one JSON-RPC message, sending nothing', async () => {
    peer.posts.splice(0);
    const { status, text } = await call('/a2a/open', '{"message":"not json-rpc"}');
    expect(status).toBe(400);
    expect(JSON.parse(text)).toMatchObject({ error: { code: -32600, data: { code: 'SIDECAR_MCP_INVALID_REQUEST' } } });
    const v1 = await call('/a2a/open', '{"message":"not json-rpc"}', { 'a2a-version': '1.0' });
    expect(v1.status).toBe(400);
    expect(JSON.parse(v1.text)).toMatchObject({ error: { code: -32600, data: [errorInfo('SIDECAR_MCP_INVALID_REQUEST', {})] } });
    expect(peer.posts).toHaveLength(0);
  });
});
