import { once } from 'node:events';
import type http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startServer, startSidecar } from './helpers.ts';

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

let upstream: Awaited<ReturnType<typeof startServer>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
const seen: Seen[] = [];
// Lets the streaming endpoints finish when the test says so.
let releaseStream: () => void = () => {};

const PNG = Buffer.from([
  0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x62, 0x6f, 0x62, 0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d,
]);

async function agent(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  seen.push({ url: req.url ?? '', headers: req.headers, body });
  const path = (req.url ?? '').split('?')[0];
  switch (path) {
    case '/api/echo':
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream', etag: '"v1"' });
      res.end(body);
      return;
    case '/api/profile':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: 'Bob', email: 'bob@example.com', password: 'hunter2', card: { number: '4111 1111 1111 1111' } }));
      return;
    case '/api/broken-json':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"email":"bob@example.com",');
      return;
    case '/api/big':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`contact bob@example.com ${'x'.repeat(5000)}`);
      return;
    case '/api/gzip':
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(Buffer.from([0x1f, 0x8b, 0x08, 0x00]));
      return;
    case '/api/image':
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(PNG);
      return;
    case '/api/stream': {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('event: message\ndata: {"text":"mail bob@example.com","n":1}\n\n');
      await new Promise<void>((resolve) => (releaseStream = resolve));
      res.write(': comment\ndata: key AKIAIOSFODNN7EXAMPLE\n\n');
      res.write(': from bob@example.com\nid: 7\ndata: {"ok":true}\n\n');
      res.write('data: {"multi":\ndata: "line +1 415 555 2671"}\n\n');
      res.end('data: [DONE]\n\n');
      return;
    }
    case '/api/ndjson': {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"a":"bob@example.com"}\n{"b":');
      await new Promise<void>((resolve) => (releaseStream = resolve));
      res.end('"4111111111111111"}\n{"c":"clean"}\n');
      return;
    }
    case '/api/ndjson-bad':
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end('{"a":"bob@example.com"}\nnot json\n');
      return;
    default:
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('unprotected route: bob@example.com');
  }
}

beforeAll(async () => {
  upstream = await startServer((req, res) => void agent(req, res));
  sidecar = await startSidecar({
    upstream: { url: upstream.url, circuitBreaker: { enabled: false } },
    protection: {
      maxBodyBytes: '4kb',
      routes: [{ path: '/api/lenient/*', onError: 'pass' }, { path: '/api/*' }],
    },
  });
});

afterAll(async () => {
  await sidecar?.close();
  await upstream?.close();
});

async function send(path: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer | Readable } = {}) {
  const res = await request(`${sidecar.url}${path}`, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body, text: body.toString('utf8') };
}

const lastSeen = () => seen.at(-1)!;

describe('request bodies on a protected route', () => {
  it('protects JSON before the agent sees it, with a Content-Length that matches', async () => {
    const body = JSON.stringify({ user: { email: 'bob@example.com', password: 'hunter2' }, note: 'card 4111 1111 1111 1111', id: 4155552671 });
    const res = await send('/api/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(200);
    const got = lastSeen();
    expect(JSON.parse(got.body.toString())).toEqual({
      user: { email: '[REDACTED:email]', password: '[REDACTED:password]' },
      note: 'card [REDACTED:card]',
      id: 4155552671,
    });
    expect(Number(got.headers['content-length'])).toBe(got.body.length);
    // The agent's echo is protected again on the way back, and its validator dropped.
    expect(res.text).toBe(got.body.toString());
    expect(res.headers.etag).toBeUndefined();
    expect(Number(res.headers['content-length'])).toBe(res.body.length);
  });

  it('protects text, chunked bodies included', async () => {
    await send('/api/echo', {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      body: Readable.from([Buffer.from('hi, I am bob@exa'), Buffer.from('mple.com')]),
    });
    expect(lastSeen().body.toString()).toBe('hi, I am [REDACTED:email]');
    expect(Number(lastSeen().headers['content-length'])).toBe(lastSeen().body.length);
  });

  it('protects NDJSON request bodies line by line', async () => {
    await send('/api/echo', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: '{"e":"bob@example.com"}\n{"ok":1}\n' });
    expect(lastSeen().body.toString()).toBe('{"e":"[REDACTED:email]"}\n{"ok":1}\n');
    const cl = lastSeen().headers['content-length'];
    if (cl !== undefined) expect(Number(cl)).toBe(lastSeen().body.length);
  });

  it('refuses an NDJSON request body at a line it cannot parse', async () => {
    const lines = Readable.from(['{"e":"bob@example.com"}\n', 'not json\n']);
    const res = await send('/api/echo', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text).error.code).toBe('SIDECAR_PROTECTED_BODY_INVALID');
  });

  it('refuses JSON it cannot parse with 400, and a body over maxBodyBytes with 413, forwarding nothing', async () => {
    const before = seen.length;
    const bad = await send('/api/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"bob@example.com"' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).error.code).toBe('SIDECAR_PROTECTED_BODY_INVALID');
    const big = await send('/api/echo', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `bob@example.com ${'x'.repeat(5000)}` });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.text).error.code).toBe('SIDECAR_PROTECTED_BODY_TOO_LARGE');
    const gz = await send('/api/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: Buffer.from([0x1f, 0x8b]),
    });
    expect(gz.status).toBe(400);
    expect(seen.length).toBe(before);
  });

  it('with onError: pass, forwards what it cannot parse, protected as text where it can', async () => {
    const res = await send('/api/lenient/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"bob@example.com"' });
    expect(res.status).toBe(200);
    expect(lastSeen().body.toString()).toBe('{"email":"[REDACTED:email]"');
    expect(sidecar.logs.lines.some((l) => l.event_type === 'protection_bypassed' && l.reason === 'unreadable')).toBe(true);
  });

  it('passes other content types untouched', async () => {
    await send('/api/echo', { method: 'POST', headers: { 'content-type': 'image/png' }, body: PNG });
    expect(lastSeen().body.equals(PNG)).toBe(true);
  });

  it('sends 100 Continue before it reads a body it protects, and forwards no Expect', async () => {
    const body = JSON.stringify({ email: 'bob@example.com' });
    const socket = net.connect(sidecar.port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (text === 'HTTP/1.1 100 Continue\r\n\r\n') socket.write(body);
    });
    socket.write(
      `POST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
    );
    await once(socket, 'close');
    expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ')).toBe(true);
    expect(lastSeen().body.toString()).toBe('{"email":"[REDACTED:email]"}');
    expect(lastSeen().headers.expect).toBeUndefined();
  });

  it('asks the agent for uncompressed, whole answers on protected routes', async () => {
    await send('/api/profile', { headers: { 'accept-encoding': 'gzip, br', range: 'bytes=0-10' } });
    expect(lastSeen().headers['accept-encoding']).toBe('identity');
    expect(lastSeen().headers.range).toBeUndefined();
  });
});

describe('response bodies on a protected route', () => {
  it('protects a JSON answer', async () => {
    const res = await send('/api/profile');
    expect(JSON.parse(res.text)).toEqual({ name: 'Bob', email: '[REDACTED:email]', password: '[REDACTED:password]', card: { number: '[REDACTED:card]' } });
    expect(Number(res.headers['content-length'])).toBe(res.body.length);
  });

  it('refuses with 502 an answer it cannot protect: bad JSON, too large, compressed', async () => {
    for (const path of ['/api/broken-json', '/api/big', '/api/gzip']) {
      const res = await send(path);
      expect(res.status).toBe(502);
      expect(JSON.parse(res.text).error.code).toBe('SIDECAR_UPSTREAM_BODY_UNPROTECTABLE');
      expect(res.text).not.toContain('bob@example.com');
    }
  });

  it('passes binary answers untouched, and unprotected routes as they are', async () => {
    expect((await send('/api/image')).body.equals(PNG)).toBe(true);
    expect((await send('/other')).text).toBe('unprotected route: bob@example.com');
  });

  it('protects an SSE stream event by event: the first event arrives while the agent still writes', async () => {
    const res = await request(`${sidecar.url}/api/stream`);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const reader = res.body[Symbol.asyncIterator]();
    const first = ((await reader.next()).value as Buffer).toString();
    // The agent is still holding the stream open here.
    expect(first).toBe('event: message\ndata: {"text":"mail [REDACTED:email]","n":1}\n\n');
    releaseStream();
    let rest = '';
    for (let r = await reader.next(); !r.done; r = await reader.next()) rest += (r.value as Buffer).toString();
    expect(rest).toBe(
      ': comment\ndata: key [REDACTED:aws_access_key]\n\n: from [REDACTED:email]\nid: 7\ndata: {"ok":true}\n\ndata: {"multi":"line [REDACTED:phone]"}\n\ndata: [DONE]\n\n',
    );
  });

  it('protects NDJSON line by line, across chunk boundaries', async () => {
    const res = await request(`${sidecar.url}/api/ndjson`);
    const reader = res.body[Symbol.asyncIterator]();
    expect(((await reader.next()).value as Buffer).toString()).toBe('{"a":"[REDACTED:email]"}\n');
    releaseStream();
    let rest = '';
    for (let r = await reader.next(); !r.done; r = await reader.next()) rest += (r.value as Buffer).toString();
    expect(rest).toBe('{"b":"[REDACTED:card]"}\n{"c":"clean"}\n');
  });

  it('cuts an NDJSON stream at a line it cannot parse, after the lines before it', async () => {
    const res = await request(`${sidecar.url}/api/ndjson-bad`);
    let got = '';
    await expect(
      (async () => {
        for await (const chunk of res.body) got += (chunk as Buffer).toString();
      })(),
    ).rejects.toThrow();
    expect(got).toBe('{"a":"[REDACTED:email]"}\n');
    expect(got).not.toContain('not json');
  });
});
