import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli, startServer, waitForStartup } from './helpers.ts';

const EVENTS = 6;
const EVERY_MS = 500; // six events, one every 500 ms: a stream of about 3 s

/** An SSE upstream: /stream sends EVENTS events then an `end` event; anything else is 200. */
async function startSseUpstream() {
  return startServer((req, res) => {
    if (req.url !== '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let n = 0;
    res.write(`id: ${n}\ndata: event ${n}\n\n`);
    const timer = setInterval(() => {
      n += 1;
      if (n < EVENTS) {
        res.write(`id: ${n}\ndata: event ${n}\n\n`);
        return;
      }
      clearInterval(timer);
      res.end('event: end\ndata: done\n\n');
    }, EVERY_MS);
    res.once('close', () => clearInterval(timer));
  });
}

interface StreamResult {
  status: number;
  body: string;
  /** True only when the response ended properly (the terminating chunk arrived). */
  complete: boolean;
}

/**
 * Starts a streaming GET and resolves `firstEvent` once the first event is in; `done` settles
 * when the response ended or was cut.
 */
function openStream(url: string): { firstEvent: Promise<void>; done: Promise<StreamResult> } {
  let onFirst!: () => void;
  let onFirstFail!: (e: Error) => void;
  const firstEvent = new Promise<void>((resolve, reject) => {
    onFirst = resolve;
    onFirstFail = reject;
  });
  const done = new Promise<StreamResult>((resolve) => {
    const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      let body = '';
      let ended = false;
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.includes('\n\n')) onFirst();
      });
      res.once('end', () => (ended = true));
      res.once('error', () => undefined);
      res.once('close', () => resolve({ status: res.statusCode!, body, complete: ended && res.complete }));
    });
    req.once('error', (e) => {
      onFirstFail(e);
      resolve({ status: 0, body: '', complete: false });
    });
  });
  return { firstEvent, done };
}

function eventsIn(body: string): string[] {
  return [...body.matchAll(/^data: (.*)$/gm)].map((m) => m[1]!);
}

async function getStatus(url: string): Promise<number> {
  const res = await fetch(url, { headers: { connection: 'close' } });
  await res.arrayBuffer();
  return res.status;
}

/** Whether a new TCP connection to the port is accepted, or the error code. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

async function until(probe: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

describe('shutdown of the CLI process', () => {
  let dir: string;
  let upstream: Awaited<ReturnType<typeof startSseUpstream>>;
  const children: Array<ReturnType<typeof spawnCli>> = [];

  function writeConfig(name: string, extra: string[] = []): string {
    const file = join(dir, name);
    writeFileSync(
      file,
      ['listen:', '  address: 127.0.0.1:0', 'admin:', '  address: 127.0.0.1:0', 'upstream:', `  url: ${upstream.url}`, ...extra, ''].join('\n'),
    );
    return file;
  }

  async function start(config: string) {
    const proc = spawnCli(['run', '--config', config]);
    children.push(proc);
    const info = await waitForStartup(proc);
    const port = Number(new URL(info.listen).port);
    return { proc, url: info.listen, port, adminUrl: `http://${info.admin}` };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sidecar-shutdown-'));
    upstream = await startSseUpstream();
  });

  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.child.exitCode === null && c.child.signalCode === null) {
        c.child.kill('SIGKILL');
        await c.exited;
      }
    }
  });

  afterAll(async () => {
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('SIGTERM lets an in-flight SSE stream finish, fails readiness, refuses new connections, exits 0', async () => {
    const sc = await start(writeConfig('drain.yaml'));
    expect(await getStatus(`${sc.adminUrl}/readyz`)).toBe(200);

    const stream = openStream(`${sc.url}/stream`);
    await stream.firstEvent;
    sc.proc.child.kill('SIGTERM');

    // While draining: not ready, but alive.
    expect(await until(async () => (await getStatus(`${sc.adminUrl}/readyz`)) === 503)).toBe(true);
    expect(await getStatus(`${sc.adminUrl}/healthz`)).toBe(200);
    // The ingress listener is closed: new connections are refused.
    expect(await tryConnect(sc.port)).toBe('ECONNREFUSED');

    const result = await stream.done;
    expect(result.status).toBe(200);
    expect(result.complete).toBe(true);
    expect(eventsIn(result.body)).toEqual([...Array.from({ length: EVENTS }, (_, i) => `event ${i}`), 'done']);
    expect(result.body).toContain('event: end');

    expect(await sc.proc.exited).toBe(0);
  });

  it('a second signal during the drain exits at once with a non-zero status', async () => {
    const sc = await start(writeConfig('second-signal.yaml'));
    const stream = openStream(`${sc.url}/stream`);
    await stream.firstEvent;
    sc.proc.child.kill('SIGTERM');
    expect(await until(async () => (await getStatus(`${sc.adminUrl}/readyz`)) === 503)).toBe(true);
    sc.proc.child.kill('SIGTERM');

    const code = await sc.proc.exited;
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(code).toBe(143);
    // The process did not wait for the stream: it was cut before its end.
    const result = await stream.done;
    expect(result.complete).toBe(false);
    expect(eventsIn(result.body)).not.toContain('done');
  });

  it('a grace period shorter than the stream cuts it and still exits 0', async () => {
    const sc = await start(writeConfig('short-grace.yaml', ['shutdown:', '  gracePeriod: 500ms']));
    const stream = openStream(`${sc.url}/stream`);
    await stream.firstEvent;
    sc.proc.child.kill('SIGTERM');

    const result = await stream.done;
    expect(result.status).toBe(200);
    expect(result.complete).toBe(false);
    expect(eventsIn(result.body)).not.toContain('done');
    expect(eventsIn(result.body).length).toBeLessThan(EVENTS);

    expect(await sc.proc.exited).toBe(0);
    expect(sc.proc.output()).toContain('"event_type":"shutdown"');
  });

  it('SIGTERM with nothing in flight exits 0', async () => {
    const sc = await start(writeConfig('idle.yaml'));
    expect(await getStatus(`${sc.url}/`)).toBe(200);
    sc.proc.child.kill('SIGTERM');
    expect(await sc.proc.exited).toBe(0);
  });
});
