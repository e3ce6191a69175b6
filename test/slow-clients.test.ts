import type http from 'node:http';
import net from 'node:net';
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
      limits: { clientHeadersTimeout: '2s', clientRequestTimeout: '3s' },
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
