import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { rawExchange, startServer, startSidecar } from './helpers.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');


function codeOf(text: string): string | undefined {
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  return (JSON.parse(body) as { error: { code: string } }).error.code;
}

describe('streaming proxy', () => {
  let upstream: Awaited<ReturnType<typeof startServer>>;
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  const seen: Array<{ url: string; headers: http.IncomingHttpHeaders }> = [];
  let releaseSse: (() => void) | undefined;

  beforeAll(async () => {
    upstream = await startServer((req, res) => {
      seen.push({ url: req.url!, headers: req.headers });
      if (req.url === '/echo') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        req.pipe(res);
        return;
      }
      if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('data: first\n\n');
        releaseSse = () => res.end('data: last\n\n');
        return;
      }
      if (req.url === '/hop') {
        res.writeHead(200, { connection: 'x-upstream-private', 'x-upstream-private': 'secret', 'keep-alive': 'timeout=5', 'x-kept': 'yes' });
        res.end('ok');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ url: req.url, headers: req.headers }));
    });
    sidecar = await startSidecar({ upstream: { url: upstream.url }, limits: { maxBodyBytes: '20mb' } });
  });
  afterAll(async () => {
    await sidecar.close();
    await upstream.close();
  });

  it('round-trips a 10 MB body byte for byte in both directions', async () => {
    const payload = randomBytes(10 * 1024 * 1024);
    const res = await request(`${sidecar.url}/echo`, { method: 'POST', body: payload });
    const back = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(200);
    expect(back.length).toBe(payload.length);
    expect(sha256(back)).toBe(sha256(payload));
  });

  it('round-trips a chunked body of unknown length', async () => {
    const parts = [randomBytes(100_000), randomBytes(3), randomBytes(500_000)];
    const res = await request(`${sidecar.url}/echo`, {
      method: 'POST',
      body: Readable.from(parts),
    });
    expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(sha256(Buffer.concat(parts)));
  });

  it('delivers an SSE event while the upstream still holds the stream open', async () => {
    const res = await request(`${sidecar.url}/sse`);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const reader = res.body[Symbol.asyncIterator]();
    const first = await reader.next();
    expect(Buffer.from(first.value as Buffer).toString()).toBe('data: first\n\n');
    releaseSse!();
    let rest = '';
    for (let r = await reader.next(); !r.done; r = await reader.next()) rest += Buffer.from(r.value as Buffer).toString();
    expect(rest).toBe('data: last\n\n');
  });

  it('removes hop-by-hop headers in both directions', async () => {
    seen.length = 0;
    const reply = await rawExchange(
      sidecar.port,
      'GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close, x-client-private\r\nX-Client-Private: 1\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-Kept: 1\r\n\r\n',
    );
    const h = seen[0]!.headers;
    expect(h['x-client-private']).toBeUndefined();
    expect(h['keep-alive']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['proxy-connection']).toBeUndefined();
    expect(h['x-kept']).toBe('1');
    const head = reply.slice(0, reply.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).not.toContain('x-upstream-private');
    expect(head).not.toContain('keep-alive: timeout=5');
    expect(head).toContain('x-kept: yes');
  });

  it('generates X-Request-Id when absent, keeps a valid one, and returns it', async () => {
    seen.length = 0;
    const a = await request(`${sidecar.url}/id`);
    await a.body.dump();
    const generated = a.headers['x-request-id'];
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen[0]!.headers['x-request-id']).toBe(generated);

    const b = await request(`${sidecar.url}/id`, { headers: { 'x-request-id': 'trace-abc-123' } });
    await b.body.dump();
    expect(b.headers['x-request-id']).toBe('trace-abc-123');
    expect(seen[1]!.headers['x-request-id']).toBe('trace-abc-123');

    const c = await request(`${sidecar.url}/id`, { headers: { 'x-request-id': 'bad id with spaces' } });
    await c.body.dump();
    expect(c.headers['x-request-id']).not.toBe('bad id with spaces');
  });

  it('refuses a body over the limit with 413 and never forwards it', async () => {
    const small = await startSidecar({ upstream: { url: upstream.url }, limits: { maxBodyBytes: '1kb' } });
    try {
      seen.length = 0;
      const declared = await request(`${small.url}/echo`, { method: 'POST', body: Buffer.alloc(2048) });
      expect(declared.statusCode).toBe(413);
      expect(((await declared.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_BODY_TOO_LARGE');
      expect(seen).toHaveLength(0);

      const chunked = await request(`${small.url}/echo`, {
        method: 'POST',
        body: Readable.from([Buffer.alloc(800), Buffer.alloc(800)]),
      }).catch((err: Error) => err);
      // The upstream may already have started; the client sees a 413 or a cut connection, never a 200.
      if (!(chunked instanceof Error)) {
        expect(chunked.statusCode).toBe(413);
        expect(((await chunked.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_BODY_TOO_LARGE');
      }
    } finally {
      await small.close();
    }
  });

  it('answers malformed requests with 400 and forwards none of them', async () => {
    seen.length = 0;
    expect(codeOf(await rawExchange(sidecar.port, 'GET /x HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\n\r\n'))).toBe('SIDECAR_MALFORMED_REQUEST');
    expect(codeOf(await rawExchange(sidecar.port, 'GET http://evil.example/x HTTP/1.1\r\nHost: a\r\n\r\n'))).toBe('SIDECAR_FOREIGN_AUTHORITY');
    expect(codeOf(await rawExchange(sidecar.port, 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n'))).toBe('SIDECAR_CONNECT_NOT_SUPPORTED');
    expect(codeOf(await rawExchange(sidecar.port, 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n'))).toBe('SIDECAR_INVALID_TARGET');
    expect(codeOf(await rawExchange(sidecar.port, 'GET /x HTTP/1.1\r\n\r\n'))).toBe('SIDECAR_MALFORMED_REQUEST');
    expect(codeOf(await rawExchange(sidecar.port, 'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'))).toBe('SIDECAR_MALFORMED_REQUEST');
    expect(codeOf(await rawExchange(sidecar.port, 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'))).toBe('SIDECAR_MALFORMED_REQUEST');
    const tooLarge = await rawExchange(sidecar.port, `GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: lost-in-the-head\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(codeOf(tooLarge)).toBe('SIDECAR_HEADERS_TOO_LARGE');
    // No header could be read, the client's id neither: the error still carries one, in the body and the header.
    const id = (JSON.parse(tooLarge.slice(tooLarge.indexOf('\r\n\r\n') + 4)) as { error: { request_id?: string } }).error.request_id;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(tooLarge).toContain(`\r\nx-request-id: ${id}\r\n`);
    // The admin listener's errors too.
    const notFound = await request(`${sidecar.adminUrl}/nowhere`);
    const adminError = ((await notFound.body.json()) as { error: { code: string; request_id?: string } }).error;
    expect(adminError).toMatchObject({ code: 'SIDECAR_NOT_FOUND', request_id: notFound.headers['x-request-id'] });
    expect(adminError.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen).toHaveLength(0);
    // An absolute-form URI naming this host is fine, and reaches the upstream in origin-form.
    const ok = await rawExchange(sidecar.port, `GET http://127.0.0.1:${sidecar.port}/abs?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${sidecar.port}\r\nConnection: close\r\n\r\n`);
    expect(ok.startsWith('HTTP/1.1 200')).toBe(true);
    expect(seen[0]!.url).toBe('/abs?q=1');
  });
});

describe('X-Forwarded-*', () => {
  it('replaces forwarded headers from an untrusted peer and extends them from a trusted one', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const upstream = await startServer((req, res) => {
      seen.push(req.headers);
      res.end();
    });
    const untrusting = await startSidecar({ upstream: { url: upstream.url }, proxy: { trustedProxies: [] } });
    const trusting = await startSidecar({ upstream: { url: upstream.url }, proxy: { trustedProxies: ['127.0.0.1/8'] } });
    try {
      const spoof = { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', forwarded: 'for=6.6.6.6' };
      await (await request(`${untrusting.url}/a`, { headers: spoof })).body.dump();
      expect(seen[0]!['x-forwarded-for']).toBe('127.0.0.1');
      expect(seen[0]!['x-forwarded-proto']).toBe('http');
      expect(seen[0]!['x-forwarded-host']).toBe(`127.0.0.1:${untrusting.port}`);
      expect(seen[0]!.forwarded).toBeUndefined();
      expect(seen[0]!.host).toBe(`127.0.0.1:${upstream.port}`);

      await (await request(`${trusting.url}/a`, { headers: spoof })).body.dump();
      expect(seen[1]!['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
      expect(seen[1]!['x-forwarded-proto']).toBe('https');
      expect(seen[1]!['x-forwarded-host']).toBe('evil.example');
    } finally {
      await untrusting.close();
      await trusting.close();
      await upstream.close();
    }
  });
});

describe('upstream failures', () => {
  it('answers 502 with a code when the upstream refuses connections', async () => {
    const closed = await startServer(() => undefined);
    await closed.close();
    const sidecar = await startSidecar({ upstream: { url: closed.url, circuitBreaker: { enabled: false } } });
    try {
      const res = await request(`${sidecar.url}/x`);
      expect(res.statusCode).toBe(502);
      const body = (await res.body.json()) as { error: { code: string; request_id: string } };
      expect(body.error.code).toBe('SIDECAR_UPSTREAM_UNAVAILABLE');
      expect(body.error.request_id).toBe(res.headers['x-request-id']);
    } finally {
      await sidecar.close();
    }
  });

  it('answers 504 with a code when the upstream does not answer in time', async () => {
    const silent = await startServer(() => undefined);
    const sidecar = await startSidecar({ upstream: { url: silent.url, timeouts: { headers: '300ms' } } });
    try {
      const res = await request(`${sidecar.url}/x`);
      expect(res.statusCode).toBe(504);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_UPSTREAM_TIMEOUT');
    } finally {
      await sidecar.close();
      await silent.close();
    }
  });

  it('retries an idempotent request once after a connection failure, but not a POST', async () => {
    let calls = 0;
    const flaky = await startServer((req, res) => {
      calls++;
      if (calls % 2 === 1) req.socket.destroy();
      else res.end('second try');
    });
    const sidecar = await startSidecar({ upstream: { url: flaky.url, circuitBreaker: { enabled: false } } });
    try {
      const get = await request(`${sidecar.url}/x`);
      expect(get.statusCode).toBe(200);
      expect(await get.body.text()).toBe('second try');
      expect(calls).toBe(2);

      const post = await request(`${sidecar.url}/x`, { method: 'POST', body: 'payload' });
      expect(post.statusCode).toBe(502);
      await post.body.dump();
      expect(calls).toBe(3);
    } finally {
      await sidecar.close();
      await flaky.close();
    }
  });

  it('opens the circuit after consecutive failures, fails fast, and closes after a good probe', async () => {
    const placeholder = await startServer(() => undefined);
    const port = placeholder.port;
    await placeholder.close();
    const sidecar = await startSidecar({
      upstream: { url: `http://127.0.0.1:${port}`, retry: { attempts: 0 }, circuitBreaker: { failureThreshold: 3, openDuration: '300ms' } },
    });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const res = await request(`${sidecar.url}/x`);
        statuses.push(res.statusCode);
        if (i === 3) expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_CIRCUIT_OPEN');
        else await res.body.dump();
      }
      expect(statuses).toEqual([502, 502, 502, 503]);

      const revived = http.createServer((_req, res) => res.end('back'));
      revived.listen(port, '127.0.0.1');
      await once(revived, 'listening');
      try {
        await new Promise((r) => setTimeout(r, 350));
        const probe = await request(`${sidecar.url}/x`);
        expect(probe.statusCode).toBe(200);
        expect(await probe.body.text()).toBe('back');
        const after = await request(`${sidecar.url}/x`);
        expect(after.statusCode).toBe(200);
        await after.body.dump();
      } finally {
        revived.closeAllConnections();
        revived.close();
      }
    } finally {
      await sidecar.close();
    }
  });
});
