import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, HOST, request, waitFor200 } from './net.ts';
import { startChild, type Child } from './procs.ts';
import { SIDECAR_V8_FLAGS } from '../../src/cli/launch.ts';

/** A running HTTP server the load is sent to. */
export interface Server {
  readonly name: string;
  readonly url: string;
  readonly child: Child;
  /** The sidecar's admin listener (/readyz, /metrics), e.g. http://127.0.0.1:PORT. */
  readonly adminUrl?: string;
  /** Put before every request path (the egress listener's provider prefix, e.g. /openai). */
  readonly basePath?: string;
}

export const NGINX = '/usr/sbin/nginx';
export const UPSTREAM_BODY = 'ok\n';
/** The sidecar from its TypeScript sources (Node's type stripping): --source. */
export const SIDECAR_SOURCE = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/**
 * The V8 flags bin/agent-sidecar.js starts `run` with (it re-executes itself with them). The
 * bench gives them to the sidecar run from source and to undici-proxy, so that every Node.js
 * server measured has the same garbage collector settings.
 */
export { SIDECAR_V8_FLAGS };
/** The environment the launcher adds likewise (fewer glibc malloc arenas). */
export const SIDECAR_ENV = { MALLOC_ARENA_MAX: '2' } as const;
/** The sidecar as it is deployed: the package's bin, which runs the build in dist/. */
export const SIDECAR_BIN = fileURLToPath(new URL('../../bin/agent-sidecar.js', import.meta.url));
const BARE_PROXY = fileURLToPath(new URL('./bare-proxy.ts', import.meta.url));

/** What every measured request looks like: a path and extra headers (the same for every target), and a method and body when not a plain GET. */
export interface RequestShape {
  path: string;
  headers: Record<string, string>;
  /** Default GET. */
  method?: 'GET' | 'POST';
  body?: string;
}

/**
 * The top of an nginx configuration: one worker, every path inside dir (the Debian
 * build's defaults point at root-owned directories), no access log.
 */
function nginxPreamble(dir: string, name: string): string {
  return `worker_processes 1;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path ${join(dir, `${name}-body`)};
  proxy_temp_path ${join(dir, `${name}-proxy`)};
  fastcgi_temp_path ${join(dir, `${name}-fastcgi`)};
  uwsgi_temp_path ${join(dir, `${name}-uwsgi`)};
  scgi_temp_path ${join(dir, `${name}-scgi`)};
  keepalive_requests 1000000;
  keepalive_timeout 75s;
`;
}

async function startNginx(dir: string, name: string, conf: string, port: number, cpus: string | undefined): Promise<Server> {
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, conf);
  const child = startChild(name, NGINX, ['-p', dir, '-c', file, '-e', join(dir, `${name}-error.log`), '-g', 'daemon off;'], { cpus });
  const url = `http://${HOST}:${port}/`;
  await waitFor200(url, child);
  return { name, url, child };
}

/** The agent service stand-in: nginx answering 200 "ok\n" from memory. */
export async function startUpstream(dir: string, cpus: string | undefined): Promise<Server> {
  const port = await freePort();
  const conf = `${nginxPreamble(dir, 'upstream')}
  server {
    listen ${HOST}:${port} backlog=4096;
    location / { return 200 "${UPSTREAM_BODY.replace('\n', '\\n')}"; }
  }
}
`;
  return startNginx(dir, 'upstream', conf, port, cpus);
}

/**
 * The floor a proxy hop costs: nginx with a keep-alive upstream pool. With streaming (the SSE
 * scenarios), proxy_buffering off, the usual configuration for event streams, so each event
 * is passed on as it arrives.
 */
export async function startNginxProxy(dir: string, upstream: Server, cpus: string | undefined, o: { streaming?: boolean } = {}): Promise<Server> {
  const port = await freePort();
  const up = new URL(upstream.url);
  const conf = `${nginxPreamble(dir, 'nginx')}
  upstream app {
    server ${up.host};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen ${HOST}:${port} backlog=4096;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;${o.streaming ? '\n      proxy_buffering off;\n      proxy_read_timeout 60s;' : ''}
    }
  }
}
`;
  return startNginx(dir, 'nginx', conf, port, cpus);
}

/** The floor for a Node.js proxy: node:http + an undici Pool, nothing else (bare-proxy.ts). */
export async function startBareProxy(upstream: Server, cpus: string | undefined): Promise<Server> {
  const port = await freePort();
  const child = startChild('undici-proxy', process.execPath, [...SIDECAR_V8_FLAGS, BARE_PROXY, `${HOST}:${port}`, upstream.url.replace(/\/$/, '')], {
    cpus,
    env: { ...SIDECAR_ENV, ...process.env },
  });
  const url = `http://${HOST}:${port}/`;
  await waitFor200(url, child);
  return { name: 'undici-proxy', url, child };
}

export interface SidecarStartOptions {
  /** Target name; also names its configuration file. */
  name: string;
  cpus: string | undefined;
  /** Directory for a V8 CPU profile (node --cpu-prof), written when the sidecar exits. */
  cpuProfileDir?: string | undefined;
  /** YAML appended to the configuration (top-level keys such as auth and policy). */
  extraConfig?: string;
  comment?: string;
  /** log.level; default warn. */
  logLevel?: string;
  /** The child's environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** Send stdout to this file rather than into memory. */
  stdoutFile?: string;
  /** none: without the V8 flags and allocator variable `run` applies (bench --node-flags none). */
  nodeFlags?: 'default' | 'none';
  /** The script node runs: SIDECAR_BIN (default) or SIDECAR_SOURCE. */
  entry?: string;
}

/** The sidecar as a child process, with its defaults; ready once admin /readyz says 200. */
export async function startSidecar(dir: string, upstream: Server, options: SidecarStartOptions): Promise<Server> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(dir, `${options.name}.yaml`);
  writeFileSync(
    file,
    `# ${options.comment ?? 'Defaults everywhere except addresses and log level: auth off, no telemetry.'}
listen:
  address: ${HOST}:${port}
upstream:
  url: ${upstream.url.replace(/\/$/, '')}
admin:
  address: ${HOST}:${adminPort}
${/^egress:/m.test(options.extraConfig ?? '') ? '' : `egress:\n  address: ${HOST}:0\n`}log:
  level: ${options.logLevel ?? 'warn'}
${options.extraConfig ?? ''}`,
  );
  const profile =
    options.cpuProfileDir === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`, `--cpu-prof-name=${options.name}-${Date.now()}.cpuprofile`];
  // The launcher adds SIDECAR_V8_FLAGS and SIDECAR_ENV itself; the sources get them here.
  const source = options.entry === SIDECAR_SOURCE;
  const bare = options.nodeFlags === 'none';
  const nodeFlags = source && !bare ? [...SIDECAR_V8_FLAGS, ...profile] : profile;
  const env = options.env ?? process.env;
  const child = startChild(options.name, process.execPath, [...nodeFlags, options.entry ?? SIDECAR_BIN, 'run', '--config', file], {
    cpus: options.cpus,
    env: bare ? { ...env, AGENT_SIDECAR_NODE_FLAGS: 'none' } : source ? { ...SIDECAR_ENV, ...env } : options.env,
    stdoutFile: options.stdoutFile,
  });
  const adminUrl = `http://${HOST}:${adminPort}`;
  await waitFor200(`${adminUrl}/readyz`, child);
  return { name: options.name, url: `http://${HOST}:${port}/`, child, adminUrl };
}

/** The URL the load goes to: the server's origin, its base path and the request's path. */
export function targetUrl(server: Pick<Server, 'url' | 'basePath'>, shape: Pick<RequestShape, 'path'>): string {
  return new URL(`${server.basePath ?? ''}${shape.path}`, server.url).href;
}

function send(server: Server, shape: RequestShape) {
  return request(targetUrl(server, shape), { method: shape.method, headers: shape.headers, body: shape.body, timeoutMs: 2000 });
}

/** One request through the server: it must come back 200 with the upstream's body. */
export async function checkServes(server: Server, shape: RequestShape = { path: '/', headers: {} }): Promise<void> {
  const url = targetUrl(server, shape);
  const { status, body } = await send(server, shape);
  if (status !== 200 || body !== UPSTREAM_BODY) {
    throw new Error(`${server.name} at ${url} answered ${status} ${JSON.stringify(body.slice(0, 200))}, expected 200 ${JSON.stringify(UPSTREAM_BODY)}`);
  }
}

/** One request that must be refused with the given status (auth really is on). */
export async function checkRefuses(server: Server, shape: RequestShape, expected: number, why: string): Promise<void> {
  const url = targetUrl(server, shape);
  const { status, body } = await send(server, shape);
  if (status !== expected) {
    throw new Error(`${server.name} at ${url} (${why}) answered ${status} ${JSON.stringify(body.slice(0, 200))}, expected ${expected}`);
  }
}
