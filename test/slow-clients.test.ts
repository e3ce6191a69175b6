import type http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, startSidecar } from './helpers.ts';

/** What a raw client got: the bytes the server wrote, and when the connection ended (ms after it opened). */
interface Outcome {
  text: string;
  ms: number;
  closed: boolean;
}

/**
 * A raw client that sends `head`, then `byte` every `every` ms until the server answers and
 * closes (or `giveUpMs` passes): a trickling body, or a slowloris head when `head` is unfinished.
 */
function trickle(port: number, head: string, every: number, byte = 'x', giveUpMs = 15_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => socket.write(byte), every);
    });
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    const end = (closed: boolean) => {
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ text, ms: Date.now() - started, closed });
    };
    socket.once('close', () => end(true));
    const giveUp = setTimeout(() => end(false), giveUpMs);
  });
}

function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

function errorOf(text: string): { code: string; request_id: string } | undefined {
  const at = text.indexOf('\r\n\r\n');
  if (at === -1) return undefined;
  return (JSON.parse(text.slice(at + 4)) as { error: { code: string; request_id: string } }).error;
}

function header(text: string, name: string): string | undefined {
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  return new RegExp(`^${name}: (.*)$`, 'im').exec(head)?.[1]?.trim();
}

/** A request timeout with its code and the request id in both the body and the header. */
function expectTimeout(o: Outcome): void {
  expect(statusOf(o.text)).toBe(408);
  const err = errorOf(o.text)!;
  expect(err.code).toBe('SIDECAR_REQUEST_TIMEOUT');
  expect(err.request_id).toMatch(/\S/);
  expect(header(o.text, 'x-request-id')).toBe(err.request_id);
  expect(o.closed).toBe(true);
}

describe('slow request bodies', () => {
  let upstream: Awaited<ReturnType<typeof startServer>>;
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  const seen: Array<{ url: string; headers: http.IncomingHttpHeaders; bytes: number; outcome: 'end' | 'aborted' }> = [];
  let holdReads: Promise<void> | undefined;

  beforeAll(async () => {
    upstream = await startServer((req, res) => {
      let bytes = 0;
      const record = (outcome: 'end' | 'aborted') => seen.push({ url: req.url!, headers: req.headers, bytes, outcome });
      req.on('data', (d: Buffer) => (bytes += d.length));
      req.once('end', () => {
        record('end');
        res.end(`got ${bytes}`);
      });
      req.once('aborted', () => record('aborted'));
      req.once('error', () => {});
      if (req.url === '/slow-reader' && holdReads !== undefined) {
        req.pause();
        void holdReads.then(() => req.resume());
      }
    });
    sidecar = await startSidecar({
      // Few connections, so that a slow client holding one would show at once.
      upstream: { url: upstream.url, connections: 4, circuitBreaker: { enabled: false } },
      limits: { clientBodyTimeout: '1s' },
    });
  });
  afterAll(async () => {
    await sidecar.close();
    await upstream.close();
  });

  it('answers 408 to bodies that trickle, under and over the buffer size and chunked, and never lends them a connection', async () => {
    seen.length = 0;
    const heads = [
      'POST /short HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n',
      'POST /long HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n',
      'POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n',
    ];
    // Ten of each: more than the upstream has connections, one byte every 2.5 s (slower than the 1 s timeout).
    const tricklers = heads.flatMap((head) =>
      Array.from({ length: 10 }, () => trickle(sidecar.port, head, 2500, head.includes('chunked') ? '1\r\nx\r\n' : 'x')),
    );
    // Meanwhile, ordinary requests are answered as usual.
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 8; i++) {
      const res = await request(`${sidecar.url}/ordinary`);
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    for (const o of await Promise.all(tricklers)) {
      expectTimeout(o);
      // Within the body timeout, not after some longer limit.
      expect(o.ms).toBeLessThan(4000);
    }
    expect(seen.map((s) => s.url).filter((u) => u !== '/ordinary')).toEqual([]);
  });

  it('cuts the upstream request when a body that already streams stalls', async () => {
    seen.length = 0;
    // 100 kB arrive at once (past the 64 kB buffer: the body streams), then nothing more.
    const o = await trickle(sidecar.port, `POST /stalled HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n${'x'.repeat(100_000)}`, 60_000);
    expectTimeout(o);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([expect.objectContaining({ url: '/stalled', outcome: 'aborted' })]);
  });

  it('does not time out a body the upstream reads slowly', async () => {
    seen.length = 0;
    let release!: () => void;
    holdReads = new Promise((r) => (release = r));
    try {
      // 8 MB sent as fast as the client can, while the upstream reads nothing for 2.5 s.
      const body = Buffer.alloc(8 * 1024 * 1024, 'y');
      const pending = request(`${sidecar.url}/slow-reader`, { method: 'POST', body });
      setTimeout(release, 2500);
      const res = await pending;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe(`got ${body.length}`);
    } finally {
      holdReads = undefined;
    }
  });

  it('sends a short chunked body with its Content-Length, and a long one as it streams', async () => {
    seen.length = 0;
    const short = await request(`${sidecar.url}/short-chunked`, { method: 'POST', body: Readable.from([Buffer.from('abc'), Buffer.from('def')]) });
    expect(await short.body.text()).toBe('got 6');
    expect(seen[0]!.headers['content-length']).toBe('6');
    expect(seen[0]!.headers['transfer-encoding']).toBeUndefined();
    const long = await request(`${sidecar.url}/long-chunked`, { method: 'POST', body: Readable.from([Buffer.alloc(50_000), Buffer.alloc(50_000)]) });
    expect(await long.body.text()).toBe('got 100000');
    expect(seen[1]!.headers['transfer-encoding']).toBe('chunked');
  });

  it('with bufferBodyBytes 0 every body streams, and a silent one still times out', async () => {
    const streaming = await startSidecar({ upstream: { url: upstream.url }, limits: { clientBodyTimeout: '1s', bufferBodyBytes: 0 } });
    try {
      seen.length = 0;
      let started = false;
      upstream.server.once('request', () => (started = true));
      const socket = net.connect(streaming.port, '127.0.0.1');
      socket.write('POST /tiny HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n');
      // The agent has the request before its body ended.
      await expect.poll(() => started).toBe(true);
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.write('0\r\n\r\n');
      await new Promise((r) => socket.once('close', r));
      expect(text).toContain('got 3');
      expect(seen[0]!.headers['transfer-encoding']).toBe('chunked');
      expectTimeout(await trickle(streaming.port, 'POST /silent HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n', 60_000));
    } finally {
      await streaming.close();
    }
  });
});

describe('slow bodies on a protected route', () => {
  it('answers 408 while data protection reads a body that trickles', async () => {
    const upstream = await startServer((req, res) => void req.resume().once('end', () => res.end('ok')));
    const sidecar = await startSidecar({ upstream: { url: upstream.url }, limits: { clientBodyTimeout: '1s' }, protection: { routes: [{ path: '/api/*' }] } });
    try {
      const heads = [
        'POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"a":',
        'POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-ndjson\r\nContent-Length: 500\r\n\r\n{"a":1}\n',
      ];
      for (const o of await Promise.all(heads.map((h) => trickle(sidecar.port, h, 2500, ' ')))) {
        expectTimeout(o);
        expect(o.ms).toBeLessThan(4000);
      }
    } finally {
      await sidecar.close();
      await upstream.close();
    }
  });
});

describe('upstream connections', () => {
  it('answers 503 SIDECAR_UPSTREAM_BUSY past queueTimeout and maxQueue, counted in agent_errors_total', async () => {
    const slow = await startServer((_req, res) => void setTimeout(() => res.end('done'), 1500));
    const sidecar = await startSidecar({
      upstream: { url: slow.url, connections: 2, queueTimeout: '300ms', maxQueue: 2 },
      telemetry: { enabled: true, traces: { enabled: false }, metrics: { otlp: false }, logs: { otlp: false, stdout: false } },
    });
    try {
      const answers = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const res = await request(`${sidecar.url}/x`);
          const text = await res.body.text();
          return {
            status: res.statusCode,
            retryAfter: res.headers['retry-after'],
            code: res.statusCode === 503 ? (JSON.parse(text) as { error: { code: string } }).error.code : undefined,
          };
        }),
      );
      // Two hold the connections; two wait and time out; two more find the queue full.
      expect(answers.filter((a) => a.status === 200)).toHaveLength(2);
      const busy = answers.filter((a) => a.status === 503);
      expect(busy).toHaveLength(4);
      for (const a of busy) expect(a).toMatchObject({ code: 'SIDECAR_UPSTREAM_BUSY', retryAfter: '1' });
      const metrics = await (await request(`${sidecar.adminUrl}/metrics`)).body.text();
      expect(metrics).toMatch(/agent_errors_total\{[^}]*error_type="SIDECAR_UPSTREAM_BUSY"[^}]*\} 4/);
      // A waiting request gets the connection that frees.
      const later = await request(`${sidecar.url}/x`);
      expect(later.statusCode).toBe(200);
      await later.body.dump();
    } finally {
      await sidecar.close();
      await slow.close();
    }
  });

  it('answers a streamed body the circuit refuses with Connection: close, and stops reading it', async () => {
    const down = await startServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.statusCode = 503;
        res.end('down');
      });
    });
    const sidecar = await startSidecar({
      upstream: { url: down.url, retry: { attempts: 0 }, circuitBreaker: { failureThreshold: 1, openDuration: '1m', countStatus: [503] } },
    });
    try {
      await (await request(`${sidecar.url}/trip`)).body.dump();
      // Longer than the buffer, so it streams: 100 kB of a declared 4 MB, then nothing.
      const socket = net.connect(sidecar.port, '127.0.0.1');
      socket.on('error', () => {});
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
      socket.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${4 * 1024 * 1024}\r\n\r\n`);
      socket.write(Buffer.alloc(100_000, 97));
      const closed = await Promise.race([new Promise((r) => socket.once('close', () => r(true))), new Promise((r) => setTimeout(() => r(false), 5000))]);
      socket.destroy();
      expect(closed).toBe(true);
      expect(text.startsWith('HTTP/1.1 503 ')).toBe(true);
      expect(text.toLowerCase()).toContain('\r\nconnection: close\r\n');
      expect(text).toContain('SIDECAR_CIRCUIT_OPEN');
    } finally {
      await sidecar.close();
      await down.close();
    }
  });

  it('lets requests whose body streams hold only their share of the connections', async () => {
    const active = new Set<string>();
    const upstream = await startServer((req, res) => {
      active.add(req.url!);
      req.resume();
      req.once('end', () => res.end('ok'));
      req.once('close', () => active.delete(req.url!));
    });
    // Two connections, half for streamed bodies: one upload at a time, one connection left for the rest.
    const sidecar = await startSidecar({
      upstream: { url: upstream.url, connections: 2, streamedBodyShare: 0.5, queueTimeout: '1s' },
      limits: { clientBodyTimeout: '5s' },
    });
    try {
      // Two uploads past the buffer size that then trickle (a byte every 300 ms, within the body timeout).
      const head = (path: string) => `POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n${'u'.repeat(70_000)}`;
      const first = trickle(sidecar.port, head('/upload-1'), 300, 'u', 2500);
      await new Promise((r) => setTimeout(r, 300));
      const second = trickle(sidecar.port, head('/upload-2'), 300, 'u', 2500);
      await new Promise((r) => setTimeout(r, 300));
      expect([...active]).toEqual(['/upload-1']);
      // Ordinary requests still get the other connection, again and again.
      for (let i = 0; i < 5; i++) {
        const res = await request(`${sidecar.url}/ordinary`);
        expect(res.statusCode).toBe(200);
        await res.body.dump();
      }
      // The second upload waited for the share, and was refused after queueTimeout.
      const refused = await second;
      expect(statusOf(refused.text)).toBe(503);
      expect(errorOf(refused.text)!.code).toBe('SIDECAR_UPSTREAM_BUSY');
      expect(header(refused.text, 'connection')).toBe('close');
      await first;
    } finally {
      await sidecar.close();
      await upstream.close();
    }
  });
});

describe('clients that leave', () => {
  it('cut the upstream request at once, and leave no connection taken, also while they waited for one', async () => {
    const events: string[] = [];
    const upstream = await startServer((req, res) => {
      events.push(`start ${req.url}`);
      req.resume();
      req.once('aborted', () => events.push(`aborted ${req.url}`));
      req.once('end', () => res.end('ok'));
    });
    // One connection for streamed bodies, and a body timeout far longer than this test.
    const sidecar = await startSidecar({ upstream: { url: upstream.url, connections: 2, streamedBodyShare: 0.5 }, limits: { clientBodyTimeout: '60s' } });
    const upload = (path: string) => {
      const socket = net.connect(sidecar.port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(`POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n${'u'.repeat(70_000)}`);
      return socket;
    };
    try {
      const first = upload('/first');
      await expect.poll(() => events).toContain('start /first');
      // The second waits for the streamed share; both leave.
      const second = upload('/second');
      await new Promise((r) => setTimeout(r, 200));
      second.destroy();
      first.destroy();
      await expect.poll(() => events, { timeout: 1000 }).toContain('aborted /first');
      expect(events).not.toContain('start /second');
      // Nothing is left holding the share: the next upload is sent at once.
      const third = upload('/third');
      await expect.poll(() => events, { timeout: 1000 }).toContain('start /third');
      third.destroy();
    } finally {
      await sidecar.close();
      await upstream.close();
    }
  });
});

describe('client timeouts fire on time', () => {
  let upstream: Awaited<ReturnType<typeof startServer>>;
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  beforeAll(async () => {
    upstream = await startServer((req, res) => {
      req.resume();
      req.once('end', () => res.end('ok'));
    });
    sidecar = await startSidecar({
      upstream: { url: upstream.url },
      limits: { clientHeadersTimeout: '2s', clientRequestTimeout: '3s', clientBodyTimeout: '10s' },
    });
  });
  afterAll(async () => {
    await sidecar.close();
    await upstream.close();
  });

  // Node checked these every 30 s: a 2 s limit fired after up to 32 s.
  const onTime = (o: Outcome, limitMs: number) => {
    expect(o.ms).toBeGreaterThanOrEqual(limitMs - 100);
    expect(o.ms).toBeLessThan(limitMs + 1000);
  };

  it('answers a slowloris head with 408 within a second of clientHeadersTimeout, an upgrade handshake too', async () => {
    const [plain, upgrade, idle] = await Promise.all([
      trickle(sidecar.port, 'GET /a HTTP/1.1\r\nHost: a\r\n', 200, 'X'),
      trickle(sidecar.port, 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n', 200, 'X'),
      // A request line that never ends.
      trickle(sidecar.port, 'GET /', 200, 'a'),
    ]);
    for (const o of [plain!, upgrade!, idle!]) {
      expectTimeout(o);
      onTime(o, 2000);
    }
  });

  it('answers a body that keeps trickling with 408 within a second of clientRequestTimeout, with its request id', async () => {
    // A byte every 500 ms: never idle for the 10 s body timeout, but the whole request takes too long.
    const o = await trickle(sidecar.port, 'POST /a HTTP/1.1\r\nHost: a\r\nX-Request-Id: slow-body-1\r\nContent-Length: 100\r\n\r\n', 500);
    expectTimeout(o);
    expect(errorOf(o.text)!.request_id).toBe('slow-body-1');
    onTime(o, 3000);
  });

  it('closes slowloris connections on the egress and admin listeners within a second of clientHeadersTimeout', async () => {
    const port = (url: string) => Number(new URL(url).port);
    const [egress, admin] = await Promise.all([
      trickle(port(sidecar.egressUrl), 'POST /anthropic/v1/messages HTTP/1.1\r\nHost: a\r\n', 200, 'X'),
      trickle(port(sidecar.adminUrl), 'GET /healthz HTTP/1.1\r\nHost: a\r\n', 200, 'X'),
    ]);
    for (const o of [egress!, admin!]) {
      expect(o.closed).toBe(true);
      onTime(o, 2000);
    }
  });
});
