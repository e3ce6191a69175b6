import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { cacheDir } from '../../scripts/stack/cache.ts';
import { AUTH_AUDIENCE } from './auth.ts';
import { freePort, HOST, waitFor200 } from './net.ts';
import { startChild } from './procs.ts';
import { checkServes, type RequestShape, type Server } from './servers.ts';
import { envWithoutOtel, TELEMETRY_MARK, type TelemetryFixture } from './telemetry.ts';
import { executable } from './tools.ts';

/**
 * The `agentgateway` target: a real peer written in Rust, an MCP/A2A-aware proxy with JWT
 * authentication, CEL authorization and OTLP tracing (github.com/agentgateway/agentgateway).
 * It is not installed by the bench (a release build from source takes about 30 minutes; see
 * bench/README.md): the bench runs it when the binary is there and leaves it out otherwise.
 * One YAML configuration per scenario, in the temporary directory:
 * - passthrough: a plain reverse proxy to the upstream, access log off;
 * - auth: plus JWT RS256 verified against the bench JWKS (strict: no token is a 401) and one
 *   CEL rule admitting only the measured caller's roles (any other valid token is a 403);
 * - full: plus a trace of every request (a server span and a span for the upstream call) over
 *   OTLP gRPC to a receiver of its own, and its access log (a line per request on stdout).
 *   That is what it records: traces and access lines, where sidecar-full exports traces,
 *   metrics and logs over OTLP (and writes access lines to stdout).
 */

export const AGENTGATEWAY_ENV = 'BENCH_AGENTGATEWAY';
/** The resource attribute (TELEMETRY_MARK.key) agentgateway's traces carry, which its receiver counts. */
export const AGENTGATEWAY_MARK = 'agentgateway';

/** Where the bench looks for the binary: $BENCH_AGENTGATEWAY, else peers/agentgateway in the cache directory. */
export function agentgatewayPath(env: NodeJS.ProcessEnv = process.env): string {
  const set = env[AGENTGATEWAY_ENV];
  return set !== undefined && set !== '' ? set : join(cacheDir(env), 'peers', 'agentgateway');
}

/** Where the binary is looked for, and whether an executable is there (if not, the target is left out of the run). */
export function findAgentgateway(env: NodeJS.ProcessEnv = process.env): { path: string; found: boolean } {
  const path = agentgatewayPath(env);
  return { path, found: executable(path) };
}

/**
 * The CEL rule of the auth scenarios: the token's roles claim (an array) holds one of the
 * roles the measured route admits. A token without the claim fails the rule (denied).
 */
export function agentgatewayRule(roles: readonly string[]): string {
  if (roles.length === 0) throw new Error('agentgateway needs at least one role to admit');
  return `jwt.roles.exists(r, ${roles.map((role) => `r == ${JSON.stringify(role)}`).join(' || ')})`;
}

export interface AgentgatewayConfigOptions {
  /** Data-plane port (bound on 127.0.0.1: the binary must run with AGW_BIND_IP=127.0.0.1). */
  port: number;
  adminPort: number;
  statsPort: number;
  readinessPort: number;
  /** The upstream as host:port. */
  upstream: string;
  /** JWT + CEL authorization: the issuer, its JWKS (URL or file) and the roles admitted. */
  auth?: { issuer: string; jwks: { url: string } | { file: string }; roles: readonly string[] } | undefined;
  /** Traces over OTLP gRPC to this host:port, and the default access log on stdout. */
  tracing?: { host: string } | undefined;
}

/** agentgateway's configuration (`agentgateway -f <file>`), as an object ready for YAML. */
export function agentgatewayConfig(o: AgentgatewayConfigOptions): Record<string, unknown> {
  const route: Record<string, unknown> = { name: 'upstream', backends: [{ host: o.upstream }] };
  if (o.auth !== undefined) {
    route.policies = {
      jwtAuth: { mode: 'strict', issuer: o.auth.issuer, audiences: [AUTH_AUDIENCE], jwks: o.auth.jwks },
      authorization: { rules: [agentgatewayRule(o.auth.roles)] },
    };
  }
  return {
    config: {
      // The access log (a line per request on stdout) is on by default: off unless the scenario records (full).
      ...(o.tracing === undefined ? { logging: { filter: 'false' } } : {}),
      enableIpv6: false,
      adminAddr: `${HOST}:${o.adminPort}`,
      statsAddr: `${HOST}:${o.statsPort}`,
      readinessAddr: `${HOST}:${o.readinessPort}`,
    },
    ...(o.tracing === undefined
      ? {}
      : {
          frontendPolicies: {
            tracing: {
              host: o.tracing.host,
              protocol: 'grpc',
              randomSampling: true,
              // A CEL string literal: the mark its receiver counts.
              resources: { [TELEMETRY_MARK.key]: JSON.stringify(AGENTGATEWAY_MARK) },
            },
          },
        }),
    binds: [{ port: o.port, listeners: [{ protocol: 'HTTP', routes: [route] }] }],
  };
}

export interface AgentgatewayStartOptions {
  auth?: { issuer: string; jwksUrl: string; roles: readonly string[] } | undefined;
  /** The OTLP gRPC receiver's endpoint (http://host:port): traces and the access log on. */
  tracingEndpoint?: string | undefined;
  cpus: string | undefined;
}

export async function startAgentgateway(bin: string, dir: string, upstream: Server, o: AgentgatewayStartOptions): Promise<Server & { stdoutFile: string }> {
  const [port, adminPort, statsPort, readinessPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const file = join(dir, 'agentgateway.yaml');
  const config = agentgatewayConfig({
    port,
    adminPort,
    statsPort,
    readinessPort,
    upstream: new URL(upstream.url).host,
    auth: o.auth && { issuer: o.auth.issuer, jwks: { url: o.auth.jwksUrl }, roles: o.auth.roles },
    tracing: o.tracingEndpoint === undefined ? undefined : { host: new URL(o.tracingEndpoint).host },
  });
  writeFileSync(file, `# ${describeAgentgateway(o)}\n${stringify(config)}`);
  const stdoutFile = join(dir, 'agentgateway-stdout.log');
  // Its listeners bind the wildcard address unless AGW_BIND_IP says otherwise (a patch of the build: README).
  const child = startChild('agentgateway', bin, ['-f', file], {
    cpus: o.cpus,
    cwd: dir,
    env: envWithoutOtel({ AGW_BIND_IP: HOST }),
    stdoutFile,
  });
  await waitFor200(`http://${HOST}:${readinessPort}/healthz/ready`, child);
  // Ready can be said just before the data-plane listener is bound.
  await waitForListener(port, 'agentgateway');
  return { name: 'agentgateway', url: `http://${HOST}:${port}/`, child, stdoutFile };
}

async function waitForListener(port: number, name: string, deadlineMs = 5000): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, HOST);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > until) throw new Error(`${name} said it was ready but does not listen on ${HOST}:${port} after ${deadlineMs} ms`);
    await sleep(50);
  }
}

function describeAgentgateway(o: AgentgatewayStartOptions): string {
  if (o.auth === undefined) return 'Plain reverse proxy to the upstream; no access log.';
  const auth = `JWT RS256 (strict) from the bench JWKS and the CEL rule ${agentgatewayRule(o.auth.roles)}`;
  return o.tracingEndpoint === undefined
    ? `${auth}; no access log.`
    : `${auth}; traces over OTLP gRPC to ${o.tracingEndpoint} and the access log on stdout (sidecar-full exports traces, metrics and logs).`;
}

const REQUESTS = 20;
const EXPORT_WAIT_MS = 15_000;

/**
 * Before any figure in the full scenario: agentgateway must deliver at least a span per request
 * to its receiver (it sends two: the request and the upstream call), every one with its mark,
 * and write an access line per request to stdout.
 */
export async function verifyAgentgatewayTelemetry(
  fixture: TelemetryFixture,
  server: Server & { stdoutFile: string },
  shape: RequestShape,
  log: (line: string) => void,
): Promise<void> {
  const lines = () =>
    readFileSync(server.stdoutFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '').length;
  const before = fixture.counts();
  const linesBefore = lines();
  const started = Date.now();
  for (let i = 0; i < REQUESTS; i++) await checkServes(server, shape);
  let spans = 0;
  let foreign = 0;
  let accessLines = 0;
  while (Date.now() - started < EXPORT_WAIT_MS) {
    const c = fixture.counts();
    spans = c.spans - before.spans;
    foreign = c.foreign - before.foreign;
    accessLines = lines() - linesBefore;
    if (spans >= REQUESTS && accessLines >= REQUESTS) break;
    await sleep(250);
  }
  if (spans < REQUESTS)
    throw new Error(`agentgateway exported ${spans} spans within ${EXPORT_WAIT_MS} ms for ${REQUESTS} requests:\n${server.child.stderr().slice(-2000)}`);
  if (foreign > 0) throw new Error(`agentgateway's receiver got ${foreign} span(s) without ${TELEMETRY_MARK.key}=${AGENTGATEWAY_MARK}`);
  if (accessLines < REQUESTS) throw new Error(`agentgateway wrote ${accessLines} lines to stdout (${server.stdoutFile}) for ${REQUESTS} requests`);
  log(
    `telemetry verified in ${((Date.now() - started) / 1000).toFixed(1)}s: agentgateway exported ${spans} spans and wrote ${accessLines} access lines for ${REQUESTS} requests`,
  );
}
