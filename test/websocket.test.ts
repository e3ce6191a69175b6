import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer, type RawData } from 'ws';
import { startServer, startSidecar } from './helpers.ts';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.ts';

type Sidecar = Awaited<ReturnType<typeof startSidecar>>;

/** An upstream WebSocket echo server that remembers each upgrade request's headers. */
async function startEchoUpstream(): Promise<{ url: string; upgrades: IncomingMessage['headers'][]; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required');
  });
  const wss = new WebSocketServer({ server });
  const upgrades: IncomingMessage['headers'][] = [];
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers);
    ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    upgrades,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function wsUrl(httpUrl: string, path = '/ws'): string {
  return httpUrl.replace(/^http/, 'ws') + path;
}

/** Opens a client and resolves once it is open, or rejects with the handshake failure. */
function connect(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Resolves with the next message (data and whether it was binary). */
function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: RawData, isBinary: boolean) => resolve({ data: Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), isBinary }));
    ws.once('error', reject);
  });
}

async function closeClient(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = once(ws, 'close');
  ws.close();
  await closed;
}

/**
 * A refused handshake as the client sees it: the status, headers and parsed body of the
 * non-101 answer (ws emits 'unexpected-response' for it).
 */
function refusedHandshake(url: string): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the handshake unexpectedly succeeded'));
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.once('end', () => {
        resolve({ status: res.statusCode!, headers: res.headers, body });
        ws.terminate();
      });
      res.once('error', reject);
    });
  });
}

describe('WebSocket through the sidecar', () => {
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let sidecar: Sidecar;

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    sidecar = await startSidecar({ upstream: { url: upstream.url } });
  });

  afterAll(async () => {
    await sidecar?.close();
    await upstream?.close();
  });

  it('echoes text and binary messages end to end', async () => {
    const ws = await connect(wsUrl(sidecar.url));
    try {
      let reply = nextMessage(ws);
      ws.send('hello through the sidecar');
      let got = await reply;
      expect(got.isBinary).toBe(false);
      expect(got.data.toString('utf8')).toBe('hello through the sidecar');

      const binary = Buffer.from([0, 1, 2, 3, 254, 255, 0, 128]);
      reply = nextMessage(ws);
      ws.send(binary);
      got = await reply;
      expect(got.isBinary).toBe(true);
      expect(Buffer.compare(got.data, binary)).toBe(0);

      // A larger frame than one TCP segment arrives whole.
      const big = Buffer.alloc(256 * 1024, 7);
      reply = nextMessage(ws);
      ws.send(big);
      got = await reply;
      expect(got.data.length).toBe(big.length);
      expect(Buffer.compare(got.data, big)).toBe(0);
    } finally {
      await closeClient(ws);
    }
  });

  it('closes cleanly when the client closes', async () => {
    const ws = await connect(wsUrl(sidecar.url));
    const closed = once(ws, 'close');
    ws.close(1000, 'done');
    const [code] = (await closed) as [number, Buffer];
    expect(code).toBe(1000);
  });

  it('gives the upstream X-Forwarded-For and the request id on the upgrade request', async () => {
    const before = upstream.upgrades.length;
    const ws = await connect(wsUrl(sidecar.url), { 'x-request-id': 'ws-req-42' });
    try {
      expect(upstream.upgrades.length).toBe(before + 1);
      const seen = upstream.upgrades[before]!;
      expect(seen['x-forwarded-for']).toBe('127.0.0.1');
      expect(seen['x-forwarded-proto']).toBe('http');
      expect(seen['x-request-id']).toBe('ws-req-42');
    } finally {
      await closeClient(ws);
    }
  });

  it('returns the request id to the client on the 101 answer', async () => {
    const ws = new WebSocket(wsUrl(sidecar.url), { headers: { 'x-request-id': 'ws-req-101' } });
    const upgraded = once(ws, 'upgrade') as Promise<[IncomingMessage]>;
    const opened = once(ws, 'open');
    const [res] = await upgraded;
    await opened;
    try {
      expect(res.statusCode).toBe(101);
      expect(res.headers['x-request-id']).toBe('ws-req-101');
    } finally {
      await closeClient(ws);
    }
  });

  it('generates a request id for the upgrade when the client sends none', async () => {
    const before = upstream.upgrades.length;
    const ws = await connect(wsUrl(sidecar.url));
    try {
      const seen = upstream.upgrades[before]!;
      expect(typeof seen['x-request-id']).toBe('string');
      expect((seen['x-request-id'] as string).length).toBeGreaterThan(0);
    } finally {
      await closeClient(ws);
    }
  });
});

describe('WebSocket upgrades the upstream refuses', () => {
  let upstream: Awaited<ReturnType<typeof startServer>>;
  let sidecar: Sidecar;

  beforeAll(async () => {
    upstream = await startServer((_req, res) => {
      res.writeHead(500);
      res.end();
    });
    // Refuse every upgrade with 403 and a body of its own.
    upstream.server.on('upgrade', (_req: IncomingMessage, socket) => {
      const body = '{"reason":"forbidden by upstream"}';
      socket.end(
        'HTTP/1.1 403 Forbidden\r\n' +
          'content-type: application/json\r\n' +
          `content-length: ${Buffer.byteLength(body)}\r\n` +
          'x-upstream-says: no\r\n' +
          'connection: close\r\n\r\n' +
          body,
      );
    });
    sidecar = await startSidecar({ upstream: { url: upstream.url } });
  });

  afterAll(async () => {
    await sidecar?.close();
    await upstream?.close();
  });

  it('relays the upstream 403 answer to the client', async () => {
    const res = await refusedHandshake(wsUrl(sidecar.url));
    expect(res.status).toBe(403);
    expect(res.headers['x-upstream-says']).toBe('no');
    expect(JSON.parse(res.body)).toEqual({ reason: 'forbidden by upstream' });
  });
});

describe('WebSocket upgrades that an ordinary HTTP handler answers', () => {
  let upstream: Awaited<ReturnType<typeof startServer>>;
  let sidecar: Sidecar;

  beforeAll(async () => {
    // No 'upgrade' listener: the upstream's request handler answers 403 with a chunked body.
    upstream = await startServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.write('not ');
      res.end('allowed');
    });
    sidecar = await startSidecar({ upstream: { url: upstream.url } });
  });

  afterAll(async () => {
    await sidecar?.close();
    await upstream?.close();
  });

  it('relays the 403 and its whole body', async () => {
    const res = await refusedHandshake(wsUrl(sidecar.url));
    expect(res.status).toBe(403);
    expect(res.body).toBe('not allowed');
  });
});

describe('WebSocket upgrades when the upstream is down', () => {
  let sidecar: Sidecar;

  beforeAll(async () => {
    // A port that was free a moment ago and is closed now: connections are refused.
    const gone = await startServer((_req, res) => res.end());
    const url = gone.url;
    await gone.close();
    sidecar = await startSidecar({ upstream: { url } });
  });

  afterAll(async () => {
    await sidecar?.close();
  });

  it('answers 502 SIDECAR_UPSTREAM_UNAVAILABLE', async () => {
    const res = await refusedHandshake(wsUrl(sidecar.url));
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body).error.code).toBe('SIDECAR_UPSTREAM_UNAVAILABLE');
    expect(res.headers['x-request-id']).toBeTruthy();
  });
});

describe('WebSocket upgrades with proxy.websockets off', () => {
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let sidecar: Sidecar;

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    sidecar = await startSidecar({ upstream: { url: upstream.url }, proxy: { websockets: false } });
  });

  afterAll(async () => {
    await sidecar?.close();
    await upstream?.close();
  });

  it('refuses the upgrade with 400 SIDECAR_UPGRADE_REFUSED and never reaches the upstream', async () => {
    const res = await refusedHandshake(wsUrl(sidecar.url));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.code).toBe('SIDECAR_UPGRADE_REFUSED');
    expect(upstream.upgrades).toHaveLength(0);
  });

  it('still proxies plain HTTP requests', async () => {
    const res = await fetch(`${sidecar.url}/plain`);
    expect(res.status).toBe(426);
    expect(await res.text()).toBe('upgrade required');
  });
});

describe('WebSocket telemetry', () => {
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let sidecar: Sidecar;
  let receiver: OtlpReceiver;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    upstream = await startEchoUpstream();
    sidecar = await startSidecar({
      upstream: { url: upstream.url },
      telemetry: { enabled: true, endpoint: receiver.endpoint, traces: { scheduledDelay: '50ms' }, logs: { scheduledDelay: '50ms' } },
    });
  });

  afterAll(async () => {
    await sidecar?.close();
    await upstream?.close();
    await receiver?.stop();
  });

  it('traces a tunnel from handshake to close: server and client spans, traceparent upstream, one access record with its bytes', async () => {
    const ws = await connect(wsUrl(sidecar.url, '/ws/chat'));
    const reply = nextMessage(ws);
    ws.send('ping over the tunnel');
    await reply;
    await closeClient(ws);

    const spans = await receiver.waitFor(receiver.spans, (s) => s.some((x) => x.kindName === 'SERVER' && x.attributes['url.path'] === '/ws/chat'));
    const server = spans.find((x) => x.kindName === 'SERVER' && x.attributes['url.path'] === '/ws/chat')!;
    const client = spans.find((x) => x.kindName === 'CLIENT' && x.parentSpanId === server.spanId)!;
    expect(server.attributes['http.response.status_code']).toBe(101);
    expect(server.status.codeName).not.toBe('ERROR');
    expect(client.attributes['http.response.status_code']).toBe(101);
    // The upstream's handshake carried the CLIENT span's context.
    const traceparent = String(upstream.upgrades.at(-1)!.traceparent);
    expect(traceparent).toBe(`00-${client.traceId}-${client.spanId}-01`);

    const logs = await receiver.waitFor(receiver.logs, (l) => l.some((r) => r.attributes.path === '/ws/chat'));
    const access = logs.find((r) => r.attributes.path === '/ws/chat')!;
    expect(access.attributes).toMatchObject({ event_type: 'access', method: 'GET', status_code: 101, trace_id: server.traceId });
    // Both directions of the tunnel were counted (a frame each way and the close frames).
    expect(access.attributes.bytes_in).toBeGreaterThan('ping over the tunnel'.length);
    expect(access.attributes.bytes_out).toBeGreaterThan('ping over the tunnel'.length);
  });

  it('records an upgrade the upstream cannot take as an error with its code', async () => {
    await upstream.close();
    const failed = await refusedHandshake(wsUrl(sidecar.url, '/ws/down'));
    expect(failed.status).toBe(502);
    const logs = await receiver.waitFor(receiver.logs, (l) => l.some((r) => r.attributes.path === '/ws/down'));
    const access = logs.find((r) => r.attributes.path === '/ws/down')!;
    expect(access.attributes).toMatchObject({ status_code: 502, error_type: 'SIDECAR_UPSTREAM_UNAVAILABLE' });
    expect(access.severityText).toBe('ERROR');
  });
});
