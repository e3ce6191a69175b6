import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { validateConfig, type SidecarConfigInput } from '../src/config/index.ts';
import { isSidecarError } from '../src/errors/index.ts';
import { createLogger } from '../src/log/index.ts';
import { assembleSidecar, type Sidecar, type SidecarOptions } from '../src/sidecar.ts';

export const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

/** An environment for a spawned `run`: none of the SIDECAR_* or OTEL_* variables of the shell that runs the tests. */
export const CLEAN_RUN_ENV: NodeJS.ProcessEnv = {
  SIDECAR_CONFIG: '',
  SIDECAR_LISTEN: '',
  SIDECAR_UPSTREAM: '',
  SIDECAR_ADMIN: '',
  SIDECAR_LOG_LEVEL: '',
  OTEL_EXPORTER_OTLP_ENDPOINT: '',
  OTEL_SERVICE_NAME: '',
};

/** A real HTTP server on a free loopback port. */
export async function startServer(
  handler: http.RequestListener,
  options: http.ServerOptions = {},
): Promise<{ server: http.Server; url: string; port: number; close: () => Promise<void> }> {
  const server = http.createServer(options, handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface LogCapture {
  lines: Array<Record<string, unknown>>;
  stream: Writable;
}

export function captureLogs(): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, stream };
}

/** The sidecar in this process, on free loopback ports. */
export async function startSidecar(
  input: SidecarConfigInput,
  extra: Partial<Omit<SidecarOptions, 'config' | 'logger'>> = {},
): Promise<{
  sidecar: Sidecar;
  url: string;
  port: number;
  adminUrl: string;
  egressUrl: string;
  /** Every side listener's bound address by name (egress, relay-grpc, relay-http). */
  listeners: Record<string, AddressInfo>;
  logs: LogCapture;
  close: () => Promise<void>;
}> {
  const config = validateConfig({
    ...input,
    // Telemetry (on by default) only where a test asks for it: no exports to whatever may
    // listen on the default collector port.
    telemetry: input.telemetry ?? { enabled: false },
    listen: { address: '127.0.0.1:0', ...input.listen },
    admin: { address: '127.0.0.1:0', ...input.admin },
    egress: { address: '127.0.0.1:0', ...input.egress },
  });
  const logs = captureLogs();
  const sidecar = await assembleSidecar(config, createLogger('info', logs.stream), extra);
  const { ingress, admin, listeners } = await sidecar.start();
  const scheme = config.listen.tls ? 'https' : 'http';
  return {
    sidecar,
    logs,
    port: ingress.port,
    url: `${scheme}://127.0.0.1:${ingress.port}`,
    adminUrl: admin ? `http://127.0.0.1:${admin.port}` : '',
    egressUrl: listeners.egress ? `http://127.0.0.1:${listeners.egress.port}` : '',
    listeners,
    close: () => sidecar.shutdown({ drainDelay: 0 }),
  };
}

/**
 * The CLI as a real child process (for signals and exit codes). `input` is written to its
 * stdin (else stdin is closed); output() is stdout and stderr interleaved, stdout() and
 * stderr() each apart.
 */
export function spawnCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  options: { input?: string; cwd?: string } = {},
): { child: ChildProcess; output: () => string; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const stdin = options.input === undefined ? 'ignore' : 'pipe';
  // The egress listener on a free port unless a test says otherwise: its default, 127.0.0.1:8081, is one port for every test file.
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, SIDECAR_EGRESS: '127.0.0.1:0', ...env },
    cwd: options.cwd,
    stdio: [stdin, 'pipe', 'pipe'],
  });
  let out = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => ((out += d.toString()), (stdout += d.toString())));
  child.stderr!.on('data', (d: Buffer) => ((out += d.toString()), (stderr += d.toString())));
  if (options.input !== undefined) child.stdin!.end(options.input);
  const exited = once(child, 'close').then(([code]) => code as number | null);
  return { child, output: () => out, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Waits until the child prints its startup line; returns the ports it bound. */
export async function waitForStartup(proc: ReturnType<typeof spawnCli>, timeoutMs = 10_000): Promise<{ listen: string; admin: string }> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const line of proc.output().split('\n')) {
      if (line.includes('"event_type":"startup"')) {
        const rec = JSON.parse(line) as { listen: string; admin: string };
        return rec;
      }
    }
    if (proc.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the sidecar did not start:\n${proc.output()}`);
}

/**
 * A real HTTP server whose handler calls authenticate() and answers the principal, or the
 * error's status and code: the authenticator tested through real requests.
 */
export async function serveAuthenticator(auth: { authenticate(req: http.IncomingMessage): Promise<unknown> }) {
  const { url, close } = await startServer(
    (req, res) => {
      auth.authenticate(req).then(
        (principal) => res.end(JSON.stringify({ principal: principal ?? null })),
        (err: unknown) => {
          res.statusCode = isSidecarError(err) ? err.status : 500;
          res.end(JSON.stringify({ code: isSidecarError(err) ? err.code : String(err) }));
        },
      );
    },
    { maxHeaderSize: 64 * 1024 },
  );
  const call = async (headers: Record<string, string>) => {
    const res = await request(`${url}/`, { headers });
    return { status: res.statusCode, ...((await res.body.json()) as { code?: string; principal?: Record<string, unknown> | null }) };
  };
  return { call, close };
}

/** Sends raw bytes on a new connection; returns everything the server wrote back before closing. */
export async function rawExchange(port: number, text: string, waitMs = 3000): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(text);
  let out = '';
  socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, waitMs))]);
  socket.destroy();
  return out;
}

/**
 * A raw TCP "HTTP server" on a free loopback port: each request head it reads is answered with
 * exactly the bytes `answer` returns for it (then the connection ends), so tests can send what
 * no HTTP library would write. `connections` counts the connections accepted.
 */
export async function startRawServer(
  answer: (head: string) => string | Buffer,
): Promise<{ url: string; port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    socket.on('data', (d: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) socket.end(answer(head));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port the kernel considers free on 127.0.0.1 right now (for a child process that must be told its port). */
export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
