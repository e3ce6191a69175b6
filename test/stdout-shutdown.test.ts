/**
 * A reader of stdout that goes away or stops reading must never hold the sidecar: the real
 * CLI as a child process, its stdout a socket pair (as a process manager or log shipper
 * gives it) or a FIFO (as a shell pipeline or a container runtime gives it), closed or left
 * unread, then signals.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, spawnCli, startServer, waitForStartup } from './helpers.ts';

/** Far longer than any of these shutdowns takes once fixed; before, they never ended. */
const EXIT_BOUND_MS = 8_000;
const CLEAN_ENV: NodeJS.ProcessEnv = { SIDECAR_CONFIG: '', SIDECAR_LISTEN: '', SIDECAR_UPSTREAM: '', SIDECAR_ADMIN: '', SIDECAR_LOG_LEVEL: '' };

let dir: string;
let upstream: Awaited<ReturnType<typeof startServer>>;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stdout-shutdown-'));
  // /slow never answers: a request the drain waits for.
  upstream = await startServer((req, res) => {
    if (req.url === '/slow') return;
    res.end('ok');
  });
});

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await once(c, 'exit');
    }
  }
});

afterAll(async () => {
  await upstream?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function config(name: string, extra: string[] = []): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    [
      'listen: { address: 127.0.0.1:0 }',
      'admin: { address: 127.0.0.1:0 }',
      'egress: { address: 127.0.0.1:0 }',
      `upstream: { url: ${upstream.url} }`,
      'telemetry: { metrics: { otlp: false }, traces: { enabled: false }, logs: { otlp: false, stdout: true } }',
      ...extra,
      '',
    ].join('\n'),
  );
  return file;
}

/** `count` requests, `parallel` at a time, each adding an access line to stdout. */
async function traffic(base: string, count: number, parallel = 16): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: parallel });
  const one = () =>
    new Promise<void>((resolve) => {
      http
        .get(`${base}/traffic`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        })
        .on('error', () => resolve());
    });
  for (let sent = 0; sent < count; sent += parallel) await Promise.all(Array.from({ length: Math.min(parallel, count - sent) }, one));
  agent.destroy();
}

/** Milliseconds until the child exits, and how. */
async function exitAfter(child: ChildProcess, start: number): Promise<{ ms: number; code: number | null; signal: NodeJS.Signals | null }> {
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_BOUND_MS + 2_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { ms: Date.now() - start, code, signal };
}

/** The sidecar with stdout a socket pair, as spawnCli gives it. */
async function onSocket(file: string, args: string[] = []) {
  const proc = spawnCli(['run', '--config', file, ...args], CLEAN_ENV);
  children.push(proc.child);
  const info = await waitForStartup(proc);
  return { proc, child: proc.child, url: info.listen };
}

/**
 * The sidecar with stdout a FIFO, as `agent-sidecar run | jq` has it. The test holds the
 * reading end: it reads the startup line, then reads no more or closes it.
 */
async function onFifo(file: string) {
  const fifo = join(dir, `fifo-${Math.random().toString(36).slice(2)}`);
  expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY);
  const child = spawn(process.execPath, [CLI, 'run', '--config', file], { env: { ...process.env, ...CLEAN_ENV }, stdio: ['ignore', writer, 'ignore'] });
  closeSync(writer);
  children.push(child);
  let out = '';
  const buf = Buffer.alloc(65536);
  const deadline = Date.now() + 10_000;
  while (!out.includes('"event_type":"startup"')) {
    if (Date.now() > deadline) throw new Error(`no startup line:\n${out}`);
    try {
      const n = readSync(reader, buf);
      out += buf.subarray(0, n).toString();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  const startup = JSON.parse(out.split('\n').find((l) => l.includes('"event_type":"startup"'))!) as { listen: string };
  let open = true;
  return {
    child,
    url: startup.listen,
    closeReader: () => {
      if (open) closeSync(reader);
      open = false;
    },
    cleanup: () => {
      if (open) closeSync(reader);
      open = false;
      rmSync(fifo, { force: true });
    },
  };
}

describe('a stdout whose reader is gone never holds the process', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('socket closed by the reader, lines still buffered, then %s: exits 0', async (signal) => {
    const sc = await onSocket(config(`socket-${signal}.yaml`));
    await traffic(sc.url, 50);
    sc.child.stdout!.destroy();
    const start = Date.now();
    sc.child.kill(signal);
    const exit = await exitAfter(sc.child, start);
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(EXIT_BOUND_MS);
  });

  it('FIFO whose reader exited (`run | jq`, then Ctrl-C), then SIGTERM: exits 0', async () => {
    const sc = await onFifo(config('fifo-closed.yaml'));
    try {
      sc.closeReader();
      await traffic(sc.url, 200);
      const start = Date.now();
      sc.child.kill('SIGTERM');
      const exit = await exitAfter(sc.child, start);
      expect(exit.code).toBe(0);
      expect(exit.ms).toBeLessThan(EXIT_BOUND_MS);
    } finally {
      sc.cleanup();
    }
  });

  it('SIGTERM during a slow request, then SIGINT: exits at once with 130', async () => {
    const sc = await onSocket(config('second-signal.yaml'));
    const slow = http.get(`${sc.url}/slow`, { agent: false });
    slow.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 300));
    sc.child.stdout!.destroy();
    sc.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    expect(sc.child.exitCode).toBeNull(); // still draining the slow request
    const start = Date.now();
    sc.child.kill('SIGINT');
    const exit = await exitAfter(sc.child, start);
    expect(exit.code).toBe(130);
    expect(exit.ms).toBeLessThan(EXIT_BOUND_MS);
    slow.destroy();
  });
});

describe('a stdout nobody reads does not hold shutdown past the grace period', () => {
  // gracePeriod 1s: the last lines wait at most what is left of it.
  const grace = ['shutdown: { gracePeriod: 1s }'];

  it('FIFO full and not read, then SIGTERM: exits 0', async () => {
    const sc = await onFifo(config('fifo-stalled.yaml', grace));
    try {
      // A FIFO holds 64 KiB: a few hundred access lines fill it.
      await traffic(sc.url, 1500);
      const start = Date.now();
      sc.child.kill('SIGTERM');
      const exit = await exitAfter(sc.child, start);
      expect(exit.code).toBe(0);
      expect(exit.ms).toBeLessThan(EXIT_BOUND_MS);
    } finally {
      sc.cleanup();
    }
  });

  it('socket full and not read, requests still served, then SIGTERM: exits 0', async () => {
    const sc = await onSocket(config('socket-stalled.yaml', grace));
    sc.child.stdout!.pause();
    // Far more than the socket and the test's own read buffer hold.
    const start0 = Date.now();
    await traffic(sc.url, 4000);
    // Requests kept being served while stdout was not read (no write blocked the sidecar).
    expect(Date.now() - start0).toBeLessThan(60_000);
    const start = Date.now();
    sc.child.kill('SIGTERM');
    const exit = await exitAfter(sc.child, start);
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(EXIT_BOUND_MS);
  });
});

describe('run -- <command>', () => {
  it('with stdout closed, SIGTERM reaches the agent and the wrapper exits with its status', async () => {
    const sc = await onSocket(config('agent-closed.yaml'), ['--', 'sleep', '60']);
    sc.child.stdout!.destroy();
    const start = Date.now();
    sc.child.kill('SIGTERM');
    const exit = await exitAfter(sc.child, start);
    expect(exit.code).toBe(143);
    expect(exit.ms).toBeLessThan(EXIT_BOUND_MS);
  });

  it('an agent that ignores SIGTERM: a second signal exits at once and takes the agent along', async () => {
    const pidFile = join(dir, 'agent.pid');
    const sc = await onSocket(config('agent-stubborn.yaml'), ['--', 'sh', '-c', `echo $$ > ${pidFile}; trap '' TERM INT; while :; do sleep 0.1; done`]);
    await expect.poll(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '').toBe(true);
    const agentPid = Number(readFileSync(pidFile, 'utf8'));
    sc.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    expect(sc.child.exitCode).toBeNull(); // waiting for the agent, which ignores it
    const start = Date.now();
    sc.child.kill('SIGTERM');
    const exit = await exitAfter(sc.child, start);
    expect(exit.code).toBe(143);
    expect(exit.ms).toBeLessThan(EXIT_BOUND_MS);
    await expect.poll(() => alive(agentPid)).toBe(false);
  });
});

/** Running (a zombie left for whoever reaps orphans here is not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
