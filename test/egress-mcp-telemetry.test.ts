/**
 * The agent's own MCP and A2A calls in OpenTelemetry, end to end: the SDK's MCP server and an
 * A2A peer behind the real sidecar's egress listener, exporting to a real OTLP receiver. A
 * CLIENT span per call, a child of the agent's traceparent, whose own traceparent reaches the
 * server; mcp.client.operation.duration and agent_egress_tool_calls_total; refusals with their
 * JSON-RPC code.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, startSidecar } from './helpers.ts';
import { startMcpAgent } from './mcp-agent.ts';
import { startOtlpReceiver, type DecodedMetric, type DecodedSpan, type OtlpReceiver } from './otlp-receiver.ts';

const AGENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const AGENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${AGENT_TRACE}-${AGENT_SPAN}-01`;

let server: Awaited<ReturnType<typeof startMcpAgent>>;
let peer: Awaited<ReturnType<typeof startServer>>;
const peerHeaders: IncomingHttpHeaders[] = [];
let receiver: OtlpReceiver;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;

beforeAll(async () => {
  server = await startMcpAgent({ '/json': true });
  peer = await startServer((req, res) => {
    peerHeaders.push(req.headers);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const msg = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: unknown; method: string };
      // A 0.3 Task (kind task), or for the 1.0 GetTask a 1.0 Task.
      const result =
        msg.method === 'GetTask'
          ? { id: 't-10', contextId: 'c-1', status: { state: 'TASK_STATE_WORKING' } }
          : { kind: 'task', id: 't-9', contextId: 'c-1', status: { state: 'completed' } };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
    });
  });
  receiver = await startOtlpReceiver();
  sidecar = await startSidecar({
    egress: {
      allowHttp: true,
      mcpServers: {
        docs: { origin: server.url, tools: ['search_*', 'get_weather'] },
        // Nothing listens on port 9 of the loopback (discard): the call fails before an answer.
        gone: { origin: 'http://127.0.0.1:9', tools: ['*'] },
      },
      agents: { planner: { origin: peer.url, methods: ['message/send', 'GetTask'] } },
    },
    telemetry: {
      endpoint: receiver.endpoint,
      serviceName: 'egress-rpc-agent',
      traces: { scheduledDelay: '50ms' },
      metrics: { exportInterval: '200ms' },
      logs: { otlp: false },
    },
  });
});

afterAll(async () => {
  await sidecar?.close();
  await server?.close();
  await peer?.close();
  await receiver?.stop();
});

async function post(path: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await request(`${sidecar.egressUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', ...body }),
  });
  const text = await res.body.text();
  const json = (text === '' ? {} : JSON.parse(text)) as { error?: { code: number; data: { code: string } } };
  return { status: res.statusCode, headers: res.headers, json };
}

const spanNamed = async (name: string, where: (s: DecodedSpan) => boolean = () => true): Promise<DecodedSpan> =>
  (await receiver.waitFor(receiver.spans, (all) => all.some((s) => s.name === name && where(s)))).find((s) => s.name === name && where(s))!;

describe("the agent's MCP calls in OpenTelemetry", () => {
  let session: string;

  it('a CLIENT span per call, named {method} {tool}, a child of the agent’s span; the server receives the sidecar’s traceparent', async () => {
    const v = { 'mcp-protocol-version': '2025-06-18' };
    const init = await post('/mcp/docs/json', {
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'agent', version: '1' } },
    });
    session = init.headers['mcp-session-id'] as string;
    expect(session).toBeTruthy();
    const h = { ...v, 'mcp-session-id': session };
    await post('/mcp/docs/json', { method: 'notifications/initialized' }, h);
    server.reset();
    const called = await post(
      '/mcp/docs/json',
      { id: 'w', method: 'tools/call', params: { name: 'get_weather', arguments: { city: 'Oslo' } } },
      { ...h, traceparent: TRACEPARENT, tracestate: 'vendor=agent' },
    );
    expect(called.json.error).toBeUndefined();

    const span = await spanNamed('tools/call get_weather');
    expect(span).toMatchObject({
      kindName: 'CLIENT',
      traceId: AGENT_TRACE,
      parentSpanId: AGENT_SPAN,
      status: { codeName: 'UNSET' },
      attributes: {
        'mcp.method.name': 'tools/call',
        'mcp.protocol.version': '2025-06-18',
        'mcp.session.id': session,
        'jsonrpc.request.id': 'w',
        'gen_ai.tool.name': 'get_weather',
        'gen_ai.operation.name': 'execute_tool',
        'server.address': '127.0.0.1',
        'server.port': new URL(server.url).port === '' ? 80 : Number(new URL(server.url).port),
      },
    });
    expect(span.attributes['rpc.response.status_code']).toBeUndefined();
    expect(span.attributes['error.type']).toBeUndefined();
    // The server continues the sidecar's CLIENT span, not the agent's; the agent's tracestate rides along.
    const [received] = server.calls('tools/call');
    expect(received!.headers.traceparent).toBe(`00-${AGENT_TRACE}-${span.spanId}-01`);
    expect(received!.headers.tracestate).toBe('vendor=agent');
    // Arguments and results are never recorded.
    expect(JSON.stringify(receiver.spans())).not.toContain('Oslo');
    // A call without a traceparent starts a trace of its own.
    await post('/mcp/docs/json', { id: 'l', method: 'tools/list' }, h);
    const list = await spanNamed('tools/list', (s) => s.attributes['jsonrpc.request.id'] === 'l');
    expect(list).toMatchObject({ kindName: 'CLIENT', parentSpanId: '' });
    expect(list.attributes['gen_ai.tool.name']).toBeUndefined();
  });

  it('a refused call: the JSON-RPC code on the span, which is an error; no session attribute in the stateless revision', async () => {
    const refused = await post(
      '/mcp/docs/json',
      { id: 7, method: 'tools/call', params: { name: 'delete_document', arguments: { id: 'secret-id' } } },
      { 'mcp-protocol-version': '2025-06-18', 'mcp-session-id': session, traceparent: TRACEPARENT },
    );
    expect(refused.json.error).toMatchObject({ code: -32602, data: { code: 'SIDECAR_TOOL_NOT_ALLOWED' } });
    const span = await spanNamed('tools/call delete_document', (s) => s.attributes['jsonrpc.request.id'] === '7');
    expect(span).toMatchObject({
      kindName: 'CLIENT',
      traceId: AGENT_TRACE,
      parentSpanId: AGENT_SPAN,
      status: { codeName: 'ERROR', message: 'SIDECAR_TOOL_NOT_ALLOWED' },
      attributes: { 'rpc.response.status_code': '-32602', 'error.type': '-32602', 'mcp.session.id': session },
    });

    await post(
      '/mcp/docs/json',
      { id: 8, method: 'tools/call', params: { name: 'delete_document', arguments: {} } },
      { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'delete_document', 'mcp-session-id': 'not-a-session' },
    );
    const stateless = await spanNamed('tools/call delete_document', (s) => s.attributes['jsonrpc.request.id'] === '8');
    expect(stateless.attributes).toMatchObject({ 'mcp.protocol.version': '2026-07-28', 'rpc.response.status_code': '-32602' });
    expect(stateless.attributes['mcp.session.id']).toBeUndefined();
    expect(JSON.stringify(receiver.spans())).not.toContain('secret-id');
  });

  it('a failed call: the HTTP status, or the sidecar’s code when no answer came, as error.type', async () => {
    const h = { 'mcp-protocol-version': '2025-06-18' };
    const missing = await post('/mcp/docs/nowhere', { id: 'n', method: 'tools/call', params: { name: 'search_documents', arguments: {} } }, h);
    expect(missing.status).toBe(404);
    expect(await spanNamed('tools/call search_documents', (s) => s.attributes['jsonrpc.request.id'] === 'n')).toMatchObject({
      status: { codeName: 'ERROR', message: '404' },
      attributes: { 'error.type': '404' },
    });
    const gone = await post('/mcp/gone', { id: 'g', method: 'ping' }, h);
    expect(gone.status).toBe(502);
    const span = await spanNamed('ping', (s) => s.attributes['jsonrpc.request.id'] === 'g');
    expect(span).toMatchObject({ kindName: 'CLIENT', status: { codeName: 'ERROR' }, attributes: { 'server.port': 9 } });
    expect(span.attributes['error.type']).toMatch(/^SIDECAR_UPSTREAM_/);
    expect(span.attributes['rpc.response.status_code']).toBeUndefined();
  });

  it('mcp.client.operation.duration in seconds with the MCP buckets, and tool calls by server, tool and decision', async () => {
    const duration = (tool: string) => (m: DecodedMetric) => m.name === 'mcp.client.operation.duration' && m.attributes['gen_ai.tool.name'] === tool;
    const calls = (m: DecodedMetric) => m.name === 'agent_egress_tool_calls';
    const points = await receiver.waitFor(
      receiver.metrics,
      (all) =>
        all.some(duration('get_weather')) &&
        all.some(duration('delete_document')) &&
        all.some((m) => calls(m) && m.value === 2) &&
        all.some((m) => duration('search_documents')(m) && m.attributes['error.type'] === '404'),
    );
    const allowed = points.filter(duration('get_weather')).at(-1)!;
    expect(allowed).toMatchObject({
      type: 'histogram',
      unit: 's',
      count: 1,
      attributes: { 'mcp.method.name': 'tools/call', 'mcp.protocol.version': '2025-06-18', 'server.address': '127.0.0.1' },
      explicitBounds: [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    });
    expect(allowed.attributes['error.type']).toBeUndefined();
    // The two refusals, one per revision: a series each.
    const refused = points.filter(duration('delete_document'));
    expect(new Set(refused.map((p) => p.attributes['mcp.protocol.version']))).toEqual(new Set(['2025-06-18', '2026-07-28']));
    expect(refused.at(-1)!.attributes).toMatchObject({ 'error.type': '-32602', 'rpc.response.status_code': '-32602' });
    const latest = new Map(points.filter(calls).map((p) => [`${p.attributes.server} ${p.attributes.tool} ${p.attributes.decision}`, p.value]));
    expect(Object.fromEntries(latest)).toEqual({
      'docs get_weather allowed': 1,
      'docs delete_document refused': 2,
      'docs search_documents allowed': 1,
    });
    expect(points.find(calls)).toMatchObject({ type: 'sum', isMonotonic: true, attributes: { agent_type: expect.any(String) } });
    // The ingress's count is the callers' alone.
    expect(points.some((p) => p.name === 'agent_tool_calls')).toBe(false);

    const text = await (await request(`${sidecar.adminUrl}/metrics`)).body.text();
    expect(text).toMatch(/mcp_client_operation_duration_seconds_bucket\{[^}]*gen_ai_tool_name="get_weather"/);
    expect(text).toMatch(/agent_egress_tool_calls_total\{[^}]*server="docs"[^}]*tool="delete_document"[^}]*decision="refused"[^}]*\} 2\n/);
  });
});

describe("the agent's A2A calls in OpenTelemetry", () => {
  it('a CLIENT span with a2a.method.name and a2a.task.id, whose traceparent the peer receives; a refused method carries its code', async () => {
    peerHeaders.splice(0);
    await post(
      '/a2a/planner',
      {
        id: 'm1',
        method: 'message/send',
        params: { message: { role: 'user', taskId: 't-9', messageId: 'x', parts: [{ kind: 'text', text: 'private plan' }] } },
      },
      { traceparent: TRACEPARENT },
    );
    const span = await spanNamed('message/send');
    expect(span).toMatchObject({
      kindName: 'CLIENT',
      traceId: AGENT_TRACE,
      parentSpanId: AGENT_SPAN,
      attributes: {
        'a2a.method.name': 'message/send',
        'a2a.task.id': 't-9',
        'a2a.task.state': 'completed',
        'a2a.protocol.version': '0.3',
        'jsonrpc.request.id': 'm1',
        'server.address': '127.0.0.1',
        'server.port': peer.port,
      },
    });
    expect(peerHeaders[0]!.traceparent).toBe(`00-${AGENT_TRACE}-${span.spanId}-01`);
    expect(JSON.stringify(receiver.spans())).not.toContain('private plan');

    // The task a 1.0 answer is about, and its state, though the request named none.
    // Without A2A-Version, a 1.0 method name tells the revision.
    await post('/a2a/planner', { id: 'g1', method: 'GetTask', params: { name: 'tasks/t-10' } });
    expect(await spanNamed('GetTask')).toMatchObject({
      attributes: { 'a2a.task.id': 't-10', 'a2a.task.state': 'TASK_STATE_WORKING', 'a2a.protocol.version': '1.0' },
    });

    const refused = await post('/a2a/planner', { id: 'c1', method: 'tasks/cancel', params: { id: 't-9' } });
    expect(refused.json.error).toMatchObject({ code: -32601, data: { code: 'SIDECAR_A2A_METHOD_NOT_ALLOWED' } });
    expect(await spanNamed('tasks/cancel')).toMatchObject({
      kindName: 'CLIENT',
      status: { codeName: 'ERROR', message: 'SIDECAR_A2A_METHOD_NOT_ALLOWED' },
      attributes: { 'a2a.task.id': 't-9', 'rpc.response.status_code': '-32601', 'error.type': '-32601' },
    });
    // A2A calls have no MCP duration.
    expect(receiver.metrics().some((m) => m.name === 'mcp.client.operation.duration' && m.attributes['mcp.method.name'] === '_OTHER')).toBe(false);
  });
});
