import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { issueToken } from '../src/auth/issuer.ts';
import { rawExchange, startServer, startSidecar } from './helpers.ts';

// bytes_out in the access record is the response body the client got, whoever wrote it: the
// agent, or the sidecar itself (its errors, preflights, refresh replies).
const SECRET = 'access-bytes-test-secret-0123456789abcdef';
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let tokens: Record<string, string>;
let seq = 0;

beforeAll(async () => {
  const dead = await startServer(() => undefined);
  await dead.close();
  sidecar = await startSidecar({
    upstream: { url: dead.url, retry: { attempts: 0 }, circuitBreaker: { failureThreshold: 1, openDuration: '1m' } },
    auth: { jwt: { secret: SECRET, algorithms: ['HS256'] }, refresh: { enabled: true } },
    cors: { allowedOrigins: ['https://app.example'] },
    limits: { maxBodyBytes: '1kb' },
    rateLimit: { routes: [{ path: '/api/v1/conversations', requests: 1, per: '1m' }] },
    telemetry: { logs: { stdout: true, otlp: false }, traces: { enabled: false }, metrics: { otlp: false } },
  });
  const token = (roles: string[], type: 'access' | 'refresh' = 'access') => issueToken(SECRET, { sub: `u-${roles.join('-')}-${type}`, roles, type }, 60_000);
  tokens = { analyst: await token(['analyst']), user: await token(['user']), admin: await token(['admin']), refresh: await token(['analyst'], 'refresh') };
});
afterAll(() => sidecar?.close());

/** Sends one request; returns its status, the body bytes received and the request id. */
async function send(method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  const id = `bytes-${++seq}`;
  const res = await request(`${sidecar.url}${path}`, { method: method as 'GET', headers: { 'x-request-id': id, ...headers }, body });
  const got = Buffer.from(await res.body.arrayBuffer()).length;
  return { id, status: res.statusCode, got };
}

async function accessRecord(id: string): Promise<Record<string, unknown>> {
  await expect.poll(() => sidecar.logs.lines.find((l) => l.event_type === 'access' && l.request_id === id)).toBeDefined();
  return sidecar.logs.lines.find((l) => l.event_type === 'access' && l.request_id === id)!;
}

describe("bytes_out of the sidecar's own answers", () => {
  it('is the length of the body the client got, for every kind of answer the sidecar writes', async () => {
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    const sent = [
      ['401', await send('GET', '/api/v1/agents')],
      ['403', await send('GET', '/api/v1/agents', bearer(tokens.user!))],
      ['400 path', await send('GET', '/api/v1/agents/a%2Fb', bearer(tokens.analyst!))],
      ['413', await send('POST', '/api/v1/agents', { ...bearer(tokens.admin!), 'content-type': 'application/json' }, 'x'.repeat(2048))],
      ['502', await send('GET', '/api/v1/conversations', bearer(tokens.analyst!))],
      ['429', await send('GET', '/api/v1/conversations', bearer(tokens.analyst!))],
      ['503', await send('GET', '/api/v1/agents', bearer(tokens.analyst!))],
      ['preflight', await send('OPTIONS', '/api/v1/agents', { origin: 'https://app.example', 'access-control-request-method': 'GET' })],
      ['preflight refused', await send('OPTIONS', '/api/v1/agents', { origin: 'https://evil.example', 'access-control-request-method': 'GET' })],
      ['refresh', await send('POST', '/auth/refresh', bearer(tokens.refresh!))],
      ['refresh refused', await send('POST', '/auth/refresh', bearer(tokens.analyst!))],
      ['HEAD 401', await send('HEAD', '/api/v1/agents')],
    ] as const;
    expect(sent.map(([what, s]) => `${what} ${s.status}`)).toEqual([
      '401 401',
      '403 403',
      '400 path 400',
      '413 413',
      '502 502',
      '429 429',
      '503 503',
      'preflight 204',
      'preflight refused 403',
      'refresh 200',
      'refresh refused 400',
      'HEAD 401 401',
    ]);
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const [what, s] of sent) {
      got[what] = (await accessRecord(s.id)).bytes_out;
      want[what] = s.got;
    }
    expect(got).toEqual(want);
    // Not vacuous: the error bodies are there, and the HEAD and the preflight have none.
    expect(
      Object.entries(want)
        .filter(([, n]) => n === 0)
        .map(([what]) => what),
    ).toEqual(['preflight', 'HEAD 401']);
  });

  it('counts the refusal of a WebSocket handshake, written on the raw socket', async () => {
    const reply = await rawExchange(
      sidecar.port,
      'GET /api/v1/agents HTTP/1.1\r\nHost: a\r\nX-Request-Id: bytes-ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(reply.startsWith('HTTP/1.1 401')).toBe(true);
    const body = reply.slice(reply.indexOf('\r\n\r\n') + 4);
    expect(body.length).toBeGreaterThan(0);
    expect((await accessRecord('bytes-ws')).bytes_out).toBe(Buffer.byteLength(body, 'latin1'));
  });
});

describe('bytes_out of a rewritten answer', () => {
  it("counts what the client got after data protection rewrote the agent's body, not what the agent sent", async () => {
    const sentByAgent: Record<string, number> = {};
    const upstream = await startServer((req, res) => {
      const body = req.url === '/api/sse' ? 'data: {"m":"mail bob@example.com now"}\n\n' : JSON.stringify({ msg: 'write to carol@example.org please', n: 1 });
      sentByAgent[req.url ?? ''] = Buffer.byteLength(body);
      res.writeHead(200, { 'content-type': req.url === '/api/sse' ? 'text/event-stream' : 'application/json' });
      res.end(body);
    });
    const protecting = await startSidecar({
      upstream: { url: upstream.url },
      protection: { routes: [{ path: '/api/*' }] },
      telemetry: { logs: { stdout: true, otlp: false }, traces: { enabled: false }, metrics: { otlp: false } },
    });
    try {
      for (const path of ['/api/json', '/api/sse']) {
        const res = await request(`${protecting.url}${path}`, { headers: { 'x-request-id': `rewritten${path.replace(/\//g, '-')}` } });
        const body = Buffer.from(await res.body.arrayBuffer());
        expect(body.toString(), path).toContain('[REDACTED:email]');
        expect(body.length, path).not.toBe(sentByAgent[path]);
        await expect
          .poll(() => protecting.logs.lines.find((l) => l.event_type === 'access' && l.path === path)?.bytes_out, { message: path })
          .toBe(body.length);
      }
    } finally {
      await protecting.close();
      await upstream.close();
    }
  });
});
