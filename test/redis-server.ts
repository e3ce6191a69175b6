import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { freePort } from './helpers.ts';

export interface RedisServer {
  port: number;
  url: string;
  /** Stops the server (SIGKILL: an outage, not a graceful shutdown). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  close(): Promise<void>;
}

const BIN = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

/** One raw PING; true on +PONG. No client library, so the helper tests nothing of ours. */
export function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(500, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      socket.destroy();
    });
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(false));
  });
}

/**
 * A real redis-server on a free loopback port, without persistence, for tests that
 * need Redis to go away and come back.
 */
export async function startRedis(): Promise<RedisServer> {
  let port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async (): Promise<boolean> => {
    output = '';
    const proc = spawn(BIN, ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--daemonize', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) return false;
      if (await ping(port)) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server did not answer PING on ${port}:\n${output}`);
  };

  const start = async () => {
    // The free port can be taken between probing and binding; then try another.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await launch()) return;
      port = await freePort();
    }
    throw new Error(`redis-server did not start:\n${output}`);
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  };

  await start();
  return {
    get port() {
      return port;
    },
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    stop,
    start: async () => {
      // Same port: the clients under test reconnect to where Redis was.
      if (!(await launch())) throw new Error(`redis-server did not restart on ${port}:\n${output}`);
    },
    close: stop,
  };
}
