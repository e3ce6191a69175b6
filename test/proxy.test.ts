import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { rawExchange, startRawServer, startServer, startSidecar } from './helpers.ts';

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
    expect(codeOf(await rawExchange(sidecar.port, 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n'))).toBe(
      'SIDECAR_CONNECT_NOT_SUPPORTED',
    );
    expect(codeOf(await rawExchange(sidecar.port, 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n'))).toBe('SIDECAR_INVALID_TARGET');
    expect(codeOf(await rawExchange(sidecar.port, 'GET /x HTTP/1.1\r\n\r\n'))).toBe('SIDECAR_MALFORMED_REQUEST');
    expect(codeOf(await rawExchange(sidecar.port, 'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'))).toBe('SIDECAR_MALFORMED_REQUEST');
    expect(codeOf(await rawExchange(sidecar.port, 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'))).toBe(
      'SIDECAR_MALFORMED_REQUEST',
    );
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
    const ok = await rawExchange(
      sidecar.port,
      `GET http://127.0.0.1:${sidecar.port}/abs?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${sidecar.port}\r\nConnection: close\r\n\r\n`,
    );
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

  it('counts a retried request once: with the defaults (one retry, 5 failures) requests 1 to 5 get 502 and the 6th 503', async () => {
    const placeholder = await startServer(() => undefined);
    await placeholder.close();
    const sidecar = await startSidecar({ upstream: { url: placeholder.url } });
    try {
      const got: string[] = [];
      for (let i = 0; i < 7; i++) {
        const res = await request(`${sidecar.url}/x`, { method: i % 2 === 0 ? 'GET' : 'DELETE' });
        got.push(`${res.statusCode} ${((await res.body.json()) as { error: { code: string } }).error.code}`);
      }
      expect(got).toEqual([...Array<string>(5).fill('502 SIDECAR_UPSTREAM_UNAVAILABLE'), '503 SIDECAR_CIRCUIT_OPEN', '503 SIDECAR_CIRCUIT_OPEN']);
    } finally {
      await sidecar.close();
    }
  });

  it('keeps the half-open probe a probe across its retry', async () => {
    const placeholder = await startServer(() => undefined);
    const port = placeholder.port;
    await placeholder.close();
    const sidecar = await startSidecar({ upstream: { url: `http://127.0.0.1:${port}`, circuitBreaker: { failureThreshold: 2, openDuration: '200ms' } } });
    try {
      for (let i = 0; i < 2; i++) await (await request(`${sidecar.url}/x`)).body.dump();
      const open = await request(`${sidecar.url}/x`);
      await open.body.dump();
      expect(open.statusCode).toBe(503);
      // Back, but the first connection it takes is reset: the probe's retry gets the answer.
      let calls = 0;
      const revived = http.createServer((req, res) => {
        if (++calls === 1) req.socket.destroy();
        else res.end('back');
      });
      revived.listen(port, '127.0.0.1');
      await once(revived, 'listening');
      try {
        await new Promise((r) => setTimeout(r, 250));
        const probe = await request(`${sidecar.url}/x`);
        expect([probe.statusCode, await probe.body.text(), calls]).toEqual([200, 'back', 2]);
        const after = await request(`${sidecar.url}/x`);
        expect([after.statusCode, await after.body.text()]).toEqual([200, 'back']);
      } finally {
        revived.closeAllConnections();
        revived.close();
      }
    } finally {
      await sidecar.close();
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

describe('invalid HTTP from the upstream', () => {
  // Each answer is invalid in its head, so nothing of it has been relayed when it is found out.
  const INVALID: Record<string, string> = {
    'status-line': 'HTTX/9 abc\r\n\r\n',
    'not-http': 'hello\r\n\r\n',
    'status-not-a-number': 'HTTP/1.1 abc OK\r\ncontent-length: 0\r\n\r\n',
    'status-four-digits': 'HTTP/1.1 1000 Odd\r\ncontent-length: 2\r\n\r\nok',
    'status-below-100': 'HTTP/1.1 099 Odd\r\ncontent-length: 2\r\n\r\nok',
    'status-above-599': 'HTTP/1.1 700 Odd\r\ncontent-length: 2\r\n\r\nok',
    'nul-in-header': 'HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 2\r\n\r\nok',
    'control-in-header': 'HTTP/1.1 200 OK\r\nx-a: a\x7fb\r\ncontent-length: 2\r\n\r\nok',
    'control-in-reason': 'HTTP/1.1 200 O\x01K\r\ncontent-length: 2\r\n\r\nok',
    'header-without-colon': 'HTTP/1.1 200 OK\r\nbroken\r\ncontent-length: 2\r\n\r\nok',
    'space-in-header-name': 'HTTP/1.1 200 OK\r\nbad name: 1\r\ncontent-length: 2\r\n\r\nok',
    'header-too-long': `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(100_000)}\r\ncontent-length: 2\r\n\r\nok`,
    'bad-content-length': 'HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\nok',
    'length-and-chunked': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
    'bare-lf': 'HTTP/1.1 200 OK\ncontent-length: 2\n\nok',
    'unasked-100': 'HTTP/1.1 100 Continue\r\n\r\n',
    'unasked-101': 'HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n',
  };
  const caseOf = (head: string) => head.slice(head.indexOf('/') + 1, head.indexOf(' HTTP/1.1'));
  let raw: Awaited<ReturnType<typeof startRawServer>>;
  beforeAll(async () => {
    raw = await startRawServer((head) => {
      const name = caseOf(head);
      if (name === 'early-hints') return 'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal';
      if (name === 'obs-text-reason') return Buffer.from('HTTP/1.1 200 Tr\xe8s bien\r\ncontent-length: 2\r\n\r\nok', 'latin1');
      if (name === 'bad-chunk') return 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n';
      return INVALID[name] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n';
    });
  });
  afterAll(() => raw.close());

  it('answers 502 SIDECAR_UPSTREAM_PROTOCOL_ERROR to each invalid answer, and does not retry it', async () => {
    const sidecar = await startSidecar({ upstream: { url: raw.url, circuitBreaker: { enabled: false } } });
    try {
      const got: Record<string, string> = {};
      for (const name of Object.keys(INVALID)) {
        const before = raw.connections();
        const res = await request(`${sidecar.url}/${name}`);
        const body = (await res.body.json()) as { error: { code: string } };
        got[name] = `${res.statusCode} ${body.error.code}`;
        // The upstream answered, so it may have acted on the request: one attempt only.
        expect(raw.connections() - before, name).toBe(1);
      }
      expect(got).toEqual(Object.fromEntries(Object.keys(INVALID).map((n) => [n, '502 SIDECAR_UPSTREAM_PROTOCOL_ERROR'])));
    } finally {
      await sidecar.close();
    }
  });

  it('relays valid answers it could have mistaken: an interim 103 before the final answer, a reason phrase in obs-text', async () => {
    const sidecar = await startSidecar({ upstream: { url: raw.url } });
    try {
      const hints = await request(`${sidecar.url}/early-hints`);
      expect([hints.statusCode, await hints.body.text()]).toEqual([200, 'final']);
      const reason = await request(`${sidecar.url}/obs-text-reason`);
      expect([reason.statusCode, await reason.body.text()]).toEqual([200, 'ok']);
    } finally {
      await sidecar.close();
    }
  });

  it('cuts the connection on invalid framing after the head, and records the protocol error', async () => {
    const sidecar = await startSidecar({
      upstream: { url: raw.url },
      telemetry: { logs: { stdout: true, otlp: false }, traces: { enabled: false }, metrics: { otlp: false } },
    });
    try {
      const res = await request(`${sidecar.url}/bad-chunk`).then(
        (r) =>
          r.body.text().then(
            () => 'complete',
            () => 'cut',
          ),
        () => 'cut',
      );
      expect(res).toBe('cut');
      const record = await waitForLine(sidecar.logs.lines, (l) => l.event_type === 'access' && l.path === '/bad-chunk');
      expect(record.error_type).toBe('SIDECAR_UPSTREAM_PROTOCOL_ERROR');
    } finally {
      await sidecar.close();
    }
  });

  it('counts a protocol error as an upstream failure for the circuit breaker', async () => {
    const sidecar = await startSidecar({ upstream: { url: raw.url, circuitBreaker: { failureThreshold: 2, openDuration: '1m' } } });
    try {
      const codes: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await request(`${sidecar.url}/status-line`);
        codes.push(((await res.body.json()) as { error: { code: string } }).error.code);
      }
      expect(codes).toEqual(['SIDECAR_UPSTREAM_PROTOCOL_ERROR', 'SIDECAR_UPSTREAM_PROTOCOL_ERROR', 'SIDECAR_CIRCUIT_OPEN']);
    } finally {
      await sidecar.close();
    }
  });

  it('answers a WebSocket handshake that gets invalid HTTP with the same code', async () => {
    const sidecar = await startSidecar({ upstream: { url: raw.url } });
    try {
      for (const name of ['status-line', 'status-above-599', 'nul-in-header', 'header-without-colon']) {
        const reply = await rawExchange(
          sidecar.port,
          `GET /${name} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
        expect([reply.slice(0, 12), codeOf(reply)], name).toEqual(['HTTP/1.1 502', 'SIDECAR_UPSTREAM_PROTOCOL_ERROR']);
      }
    } finally {
      await sidecar.close();
    }
  });
});

async function waitForLine(lines: Array<Record<string, unknown>>, match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const found = lines.find(match);
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no such log line');
}
