/**
 * What the server answers, on MCP spans, both sides: the SDK's MCP server behind the real
 * sidecar (an MCP route on ingress, an MCP server of the agent on egress), exporting to a real
 * OTLP receiver. A JSON-RPC error's code as rpc.response.status_code, a tool result with isError
 * as error.type tool_error, and with mcp.capture the arguments and result, through data
 * protection, in JSON and SSE answers. The answer reaches the client unchanged.
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
import { startOtlpReceiver, type DecodedSpan, type OtlpReceiver } from './otlp-receiver.ts';

const SECRET = 'mcp-answers-secret-of-at-least-32-characters';
const POLICY = {
  roles: { user: ['use:mcp'] },
  routes: [
    { path: '/mcp-json', methods: { POST: 'use:mcp' }, mcp: { default: 'allow' } },
    { path: '/mcp-sse', methods: { POST: 'use:mcp' }, mcp: { default: 'allow' } },
  ],
};

let agent: Awaited<ReturnType<typeof startMcpAgent>>;
let receiver: OtlpReceiver;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let dir: string;

beforeAll(async () => {
  agent = await startMcpAgent({ '/mcp-json': true, '/mcp-sse': false });
  receiver = await startOtlpReceiver();
  dir = mkdtempSync(join(tmpdir(), 'mcp-answers-'));
  writeFileSync(join(dir, 'policy.yaml'), stringify(POLICY));
  sidecar = await startSidecar({
    upstream: { url: agent.url },
    auth: { jwt: { secret: SECRET } },
    policy: { file: join(dir, 'policy.yaml') },
    mcp: { capture: { arguments: true, results: true } },
    egress: { allowHttp: true, mcpServers: { docs: { origin: agent.url, tools: ['*'] } } },
    telemetry: { endpoint: receiver.endpoint, serviceName: 'mcp-answers', traces: { scheduledDelay: '50ms' }, metrics: { otlp: false }, logs: { otlp: false } },
  });
});

afterAll(async () => {
  await sidecar?.close();
  await agent?.close();
  await receiver?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const token = () =>
  new SignJWT({ roles: ['user'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('u-1').setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

/** A session on `url`, then one message in it; the answer as the client read it (JSON, or the SSE event's data). */
async function session(url: string, auth: Record<string, string>) {
  const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18', ...auth };
  const init = await request(url, {
    method: 'POST',
    headers: base,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
  });
  await init.body.text();
  const headers = { ...base, 'mcp-session-id': String(init.headers['mcp-session-id']) };
  await (await request(url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).body.text();
  return async (body: Record<string, unknown>) => {
    const res = await request(url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', ...body }) });
    const text = await res.body.text();
    const data = String(res.headers['content-type']).startsWith('text/event-stream') ? /^data: (.*)$/m.exec(text)![1]! : text;
    return JSON.parse(data) as { result?: { isError?: boolean; content?: { text: string }[] }; error?: { code: number } };
  };
}

const spanWhere = async (where: (s: DecodedSpan) => boolean): Promise<DecodedSpan> =>
  (await receiver.waitFor(receiver.spans, (all) => all.some(where))).find(where)!;

describe.each([
  ['ingress, JSON answers', 'SERVER', () => `${sidecar.url}/mcp-json`, true],
  ['ingress, SSE answers', 'SERVER', () => `${sidecar.url}/mcp-sse`, true],
  ['egress, JSON answers', 'CLIENT', () => `${sidecar.egressUrl}/mcp/docs/mcp-json`, false],
  ['egress, SSE answers', 'CLIENT', () => `${sidecar.egressUrl}/mcp/docs/mcp-sse`, false],
] as const)('what the server answers, %s', (_, kind, url, authenticated) => {
  let call: Awaited<ReturnType<typeof session>>;
  const mark = `${kind}-${Math.random().toString(36).slice(2, 8)}`;
  const ofThis = (s: DecodedSpan) => s.kindName === kind && String(s.attributes['jsonrpc.request.id']).startsWith(mark);

  beforeAll(async () => {
    call = await session(url(), authenticated ? { authorization: `Bearer ${await token()}` } : {});
  });

  it('a result: arguments and result captured through data protection; the client gets the answer unchanged', async () => {
    const answer = await call({ id: `${mark}-ok`, method: 'tools/call', params: { name: 'get_weather', arguments: { city: 'Oslo, ask dana@example.com' } } });
    expect(answer.result!.content![0]!.text).toBe('sunny in Oslo, ask dana@example.com');
    const span = await spanWhere((s) => ofThis(s) && s.attributes['jsonrpc.request.id'] === `${mark}-ok`);
    expect(span.name).toBe('tools/call get_weather');
    expect(span.status.codeName).toBe('UNSET');
    expect(JSON.parse(String(span.attributes['gen_ai.tool.call.arguments']))).toEqual({ city: 'Oslo, ask [REDACTED:email]' });
    expect(JSON.parse(String(span.attributes['gen_ai.tool.call.result']))).toMatchObject({
      content: [{ type: 'text', text: 'sunny in Oslo, ask [REDACTED:email]' }],
    });
    expect(JSON.stringify(span)).not.toContain('dana@example.com');
    expect(span.attributes['rpc.response.status_code']).toBeUndefined();
  });

  it('a tool result with isError: error.type tool_error', async () => {
    // The SDK answers arguments that fail the tool's schema with a result that has isError.
    const answer = await call({ id: `${mark}-bad`, method: 'tools/call', params: { name: 'search_documents', arguments: { collection: 'x' } } });
    expect(answer.result?.isError).toBe(true);
    const span = await spanWhere((s) => ofThis(s) && s.attributes['jsonrpc.request.id'] === `${mark}-bad`);
    expect(span).toMatchObject({ status: { codeName: 'ERROR', message: 'tool_error' }, attributes: { 'error.type': 'tool_error' } });
    expect(span.attributes['rpc.response.status_code']).toBeUndefined();
  });

  it('a JSON-RPC error from the server: its code as rpc.response.status_code and error.type', async () => {
    const answer = await call({ id: `${mark}-err`, method: 'prompts/get', params: { name: 'no_such_prompt' } });
    const code = answer.error!.code;
    expect(typeof code).toBe('number');
    const span = await spanWhere((s) => ofThis(s) && s.attributes['jsonrpc.request.id'] === `${mark}-err`);
    expect(span).toMatchObject({
      name: 'prompts/get',
      status: { codeName: 'ERROR', message: String(code) },
      attributes: { 'rpc.response.status_code': String(code), 'error.type': String(code) },
    });
  });
});

describe('tool capture needs data protection', () => {
  it('refuses to start with capture on and telemetry protection off', async () => {
    await expect(
      startSidecar({
        upstream: { url: 'http://127.0.0.1:9' },
        mcp: { capture: { results: true } },
        protection: { telemetry: { enabled: false } },
      }),
    ).rejects.toMatchObject({ code: 'SIDECAR_CONFIG_INVALID', message: expect.stringContaining('mcp.capture') });
  });
});
