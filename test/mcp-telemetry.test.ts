/**
 * MCP messages in OpenTelemetry, end to end: the SDK's MCP server behind the real sidecar,
 * exporting to a real OTLP receiver. A span per message under the request's SERVER span,
 * mcp.server.operation.duration and agent_tool_calls_total, with refusals as JSON-RPC codes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSidecar } from './helpers.ts';
import { startMcpAgent } from './mcp-agent.ts';
import { startOtlpReceiver, type DecodedMetric, type OtlpReceiver } from './otlp-receiver.ts';

const SECRET = 'mcp-telemetry-secret-of-at-least-32-characters';
const POLICY = {
  roles: { admin: ['use:mcp', 'manage:documents', 'call:weather'], user: ['use:mcp', 'call:weather'] },
  routes: [
    {
      path: '/mcp-json',
      methods: { POST: 'use:mcp', GET: 'use:mcp', DELETE: 'use:mcp' },
      mcp: { default: 'deny', tools: { get_weather: 'call:weather', 'delete_*': 'manage:documents' } },
    },
  ],
};

let agent: Awaited<ReturnType<typeof startMcpAgent>>;
let receiver: OtlpReceiver;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let dir: string;

const token = (role: string) =>
  new SignJWT({ roles: [role] }).setProtectedHeader({ alg: 'HS256' }).setSubject(`${role}-1`).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

async function rpc(role: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await request(`${sidecar.url}/mcp-json`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${await token(role)}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
      ...headers,
    },
    body: JSON.stringify({ jsonrpc: '2.0', ...body }),
  });
  const text = await res.body.text();
  const json = (text === '' ? {} : JSON.parse(text)) as { error?: { code: number; data: { code: string } } };
  return { status: res.statusCode, headers: res.headers, json };
}

beforeAll(async () => {
  agent = await startMcpAgent({ '/mcp-json': true });
  receiver = await startOtlpReceiver();
  dir = mkdtempSync(join(tmpdir(), 'mcp-telemetry-'));
  writeFileSync(join(dir, 'policy.yaml'), stringify(POLICY));
  sidecar = await startSidecar({
    upstream: { url: agent.url },
    auth: { jwt: { secret: SECRET } },
    policy: { file: join(dir, 'policy.yaml') },
    telemetry: {
      endpoint: receiver.endpoint,
      serviceName: 'mcp-agent',
      traces: { scheduledDelay: '50ms' },
      metrics: { exportInterval: '200ms' },
      logs: { otlp: false },
    },
  });
});

afterAll(async () => {
  await sidecar?.close();
  await agent?.close();
  await receiver?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('MCP messages in OpenTelemetry', () => {
  it('a span per message, child of the HTTP SERVER span, named {method} {tool}; refusals carry the JSON-RPC code', async () => {
    const init = await rpc('admin', {
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    });
    const session = init.headers['mcp-session-id'] as string;
    expect(session).toBeTruthy();
    const h = { 'mcp-session-id': session };
    await rpc('admin', { method: 'notifications/initialized' }, h);
    expect((await rpc('user', { id: 'w', method: 'tools/call', params: { name: 'get_weather', arguments: { city: 'Oslo' } } }, h)).json.error).toBeUndefined();
    const refused = await rpc('user', { id: 7, method: 'tools/call', params: { name: 'delete_document', arguments: { id: 'secret-id' } } }, h);
    expect(refused.json.error).toMatchObject({ code: -32602, data: { code: 'SIDECAR_TOOL_FORBIDDEN' } });

    const spans = await receiver.waitFor(
      receiver.spans,
      (all) => all.some((s) => s.name === 'tools/call delete_document') && all.some((s) => s.name === 'tools/call get_weather'),
    );
    const allowed = spans.find((s) => s.name === 'tools/call get_weather')!;
    const server = spans.find((s) => s.spanId === allowed.parentSpanId)!;
    expect(server).toMatchObject({ kindName: 'SERVER', traceId: allowed.traceId, attributes: { 'http.route': '/mcp-json' } });
    expect(allowed).toMatchObject({
      kindName: 'SERVER',
      status: { codeName: 'UNSET' },
      attributes: {
        'mcp.method.name': 'tools/call',
        'gen_ai.tool.name': 'get_weather',
        'gen_ai.operation.name': 'execute_tool',
        'mcp.protocol.version': '2025-06-18',
        'mcp.session.id': session,
        'jsonrpc.request.id': 'w',
      },
    });
    expect(allowed.attributes['rpc.response.status_code']).toBeUndefined();
    const denied = spans.find((s) => s.name === 'tools/call delete_document')!;
    expect(denied).toMatchObject({
      status: { codeName: 'ERROR', message: 'SIDECAR_TOOL_FORBIDDEN' },
      attributes: { 'rpc.response.status_code': '-32602', 'error.type': '-32602', 'jsonrpc.request.id': '7' },
    });
    // Arguments and results are never recorded.
    expect(JSON.stringify(spans)).not.toContain('secret-id');
    expect(JSON.stringify(spans)).not.toContain('Oslo');
    expect(spans.some((s) => s.name === 'initialize' && s.attributes['mcp.method.name'] === 'initialize')).toBe(true);
    expect(spans.some((s) => s.name === 'notifications/initialized' && s.attributes['jsonrpc.request.id'] === undefined)).toBe(true);
  });

  it('mcp.server.operation.duration in seconds, and tool calls by tool, decision and role', async () => {
    const duration = (m: DecodedMetric) => m.name === 'mcp.server.operation.duration' && m.attributes['gen_ai.tool.name'] === 'delete_document';
    const calls = (m: DecodedMetric) => m.name === 'agent_tool_calls';
    const points = await receiver.waitFor(receiver.metrics, (all) => all.some(duration) && all.filter(calls).length >= 2);
    expect(points.find(duration)).toMatchObject({
      type: 'histogram',
      unit: 's',
      attributes: { 'mcp.method.name': 'tools/call', 'error.type': '-32602', 'rpc.response.status_code': '-32602' },
    });
    expect(points.find(duration)!.explicitBounds).toContain(300);
    const latest = new Map(points.filter(calls).map((p) => [`${p.attributes.tool} ${p.attributes.decision} ${p.attributes.role}`, p.value]));
    expect(Object.fromEntries(latest)).toEqual({ 'get_weather allowed user': 1, 'delete_document refused user': 1 });
    expect(points.find(calls)).toMatchObject({ type: 'sum', isMonotonic: true, attributes: { agent_type: expect.any(String) } });
  });
});
