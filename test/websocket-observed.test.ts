import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { RequestObserver, Stage } from '../src/core/index.ts';
import { startSidecar } from './helpers.ts';

/** Records what the observer is told, in order: each request must end exactly once, last. */
function recorder() {
  const events: string[] = [];
  const observer: RequestObserver = {
    requestStart: () => void events.push('requestStart'),
    upstreamStart: () => void events.push('upstreamStart'),
    upstreamEnd: (_ctx, status, err) => void events.push(`upstreamEnd ${status ?? '-'} ${err?.code ?? '-'}`),
    requestEnd: (ctx) => void events.push(`requestEnd ${ctx.upgradeStatus ?? 'none'} ${ctx.errorCode ?? '-'}`),
  };
  return { events, observer };
}

/** An upstream whose upgrade handling the test scripts on the raw socket. */
async function upstreamWith(onUpgrade: (socket: net.Socket) => void): Promise<string> {
  const server = http.createServer((_req, res) => res.end());
  server.on('upgrade', (_req, socket: net.Socket) => onUpgrade(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function handshake(port: number): net.Socket {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.write(
    'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  return s;
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sidecarFor(upstream: string, observer: RequestObserver, stages: Stage[] = []) {
  const s = await startSidecar({ upstream: { url: upstream } }, { observers: [observer], stages });
  cleanups.push(() => s.close());
  return s;
}

describe('WebSocket handshakes, observed to the end exactly once', () => {
  it('a client that closes (FIN) during the upstream handshake ends the request as gone, and no tunnel is left open', async () => {
    const upstream = await upstreamWith((socket) => {
      setTimeout(() => socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), 200);
    });
    const r = recorder();
    const s = await sidecarFor(upstream, r.observer);
    handshake(s.port).end();
    await sleep(500);
    expect(r.events).toEqual(['requestStart', 'upstreamStart', 'requestEnd none -']);
    // No tunnel was left open: shutdown has nothing to wait for (a tunnel would hold it for the grace period).
    const started = Date.now();
    await s.close();
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a client that resets during the handshake is no upstream failure', async () => {
    const upstream = await upstreamWith((socket) => setTimeout(() => socket.destroy(), 1000));
    const r = recorder();
    const s = await sidecarFor(upstream, r.observer);
    const client = handshake(s.port);
    await sleep(100);
    client.resetAndDestroy();
    await sleep(300);
    expect(r.events).toEqual(['requestStart', 'upstreamStart', 'requestEnd none -']);
    expect(s.logs.lines.filter((l) => l.error_type === 'SIDECAR_UPSTREAM_UNAVAILABLE')).toEqual([]);
  });

  it('an upstream that refuses and then drops mid-body: one answer to the client, recorded with the status it got', async () => {
    const upstream = await upstreamWith((socket) => {
      socket.write(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
      setTimeout(() => socket.resetAndDestroy(), 100);
    });
    const r = recorder();
    const s = await sidecarFor(upstream, r.observer);
    const client = handshake(s.port);
    let got = '';
    client.on('data', (d: Buffer) => (got += d.toString('latin1')));
    await once(client, 'close');
    expect(got.startsWith('HTTP/1.1 403 Forbidden\r\n')).toBe(true);
    expect(got).not.toMatch(/^HTTP\/1\.1 502 /m);
    expect(r.events).toEqual(['requestStart', 'upstreamStart', 'upstreamEnd 403 -', 'requestEnd 403 -']);
  });

  it('a client gone while a stage was still deciding: nothing is sent upstream', async () => {
    let upgrades = 0;
    const upstream = await upstreamWith((socket) => {
      upgrades++;
      socket.destroy();
    });
    const r = recorder();
    const slowStage: Stage = () => sleep(100);
    const s = await sidecarFor(upstream, r.observer, [slowStage]);
    const client = handshake(s.port);
    await sleep(20);
    client.destroy();
    await sleep(300);
    expect(r.events).toEqual(['requestStart', 'requestEnd none -']);
    expect(upgrades).toBe(0);
  });
});
