/**
 * The full stack on loopback, every program on free ports, each in its own directory under
 * one run directory: Elasticsearch, Jaeger v2, the collector distribution, Prometheus, the
 * demo agent (with an MCP server) and the sidecar. Programs come from the cache (scripts/stack); services that
 * must go away and come back (Elasticsearch, the collector, the agent) restart on the same
 * ports and data.
 */
import { chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { HOST, waitFor200 } from '../../bench/lib/net.ts';
import { startChild, stopChild, tail, type Child } from '../../bench/lib/procs.ts';
import { requireTool } from '../../bench/lib/tools.ts';
import { SIDECAR_SOURCE, startSidecar, type Server } from '../../bench/lib/servers.ts';
import { unzip, type Stack } from '../../scripts/stack/build.ts';
import { REPO } from '../../scripts/stack/cache.ts';

const READY_MS = 120_000;
/** Elasticsearch refuses to run as root; as root it runs as this user (nobody on Debian). */
const ES_UID = 65534;

/** A service that can be stopped and started again in place. */
export interface Restartable {
  readonly child: Child;
  stop(graceMs?: number): Promise<void>;
  start(): Promise<void>;
}

/** Keeps a program's stderr beside its stdout in its directory (KEEP_E2E_DIR=1 keeps the run). */
export function saveStderr(child: Child, dir: string, run: number | string = 'last'): void {
  writeFileSync(join(dir, `stderr-${run}.log`), child.stderr());
}

function restartable(dir: string, launch: (run: number) => Promise<Child>): Promise<Restartable> {
  let child: Child;
  let runs = 0;
  const r: Restartable = {
    get child() {
      return child;
    },
    async stop(graceMs = 10_000) {
      await stopChild(child, graceMs);
      saveStderr(child, dir, runs);
    },
    async start() {
      child = await launch(++runs);
    },
  };
  return r.start().then(() => r);
}

/**
 * A free port below the kernel's ephemeral range. A port from that range (what listen(0)
 * picks) can be taken by any outgoing connection on the machine while a service is being
 * restarted on it; one below it is only ever taken by a program that asks for it by number.
 * With `hosts`, the port is free on each of those loopback addresses (services that must
 * share a port on different addresses, as the pods behind one DNS name do).
 */
const handedOut = new Set<number>();
export async function stablePort(hosts: readonly string[] = [HOST]): Promise<number> {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const top = Math.min(low ?? 32768, 32768) - 1;
  for (let i = 0; i < 100; i++) {
    const port = 10_000 + Math.floor(Math.random() * (top - 10_000));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    let free = true;
    for (const host of hosts) free &&= await canListen(port, host);
    if (free) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

function canListen(port: number, host: string): Promise<boolean> {
  const server = net.createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * Runs a start that binds ports picked free a moment before. On a shared machine another
 * program can take such a port first; then the start is tried again with new ports.
 */
async function onFreePorts<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= attempts || !/address already in use|BindException|EADDRINUSE/i.test((err as Error).message)) throw err;
    }
  }
}

/** The last lines of a log file, for an error message; empty when there is none. */
function logTail(file: string): string {
  return existsSync(file) ? tail(readFileSync(file, 'utf8'), 30) : '';
}

function chownTree(path: string, uid: number): void {
  chownSync(path, uid, uid);
  if (!statSync(path).isDirectory()) return;
  for (const entry of readdirSync(path)) chownTree(join(path, entry), uid);
}

export interface Elasticsearch extends Restartable {
  readonly url: string;
}

export async function startElasticsearch(stack: Stack, dir: string): Promise<Elasticsearch> {
  mkdirSync(dir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  let home = stack.elasticsearchHome;
  if (asRoot) {
    // The cache under /root is not readable by the unprivileged user: a private copy (1-2 s).
    const zip = stack.paths.elasticsearchZip;
    await unzip(zip, join(dir, 'dist'));
    home = join(dir, 'dist', readdirSync(join(dir, 'dist'))[0]!);
  }
  const conf = join(dir, 'config');
  cpSync(join(stack.elasticsearchHome, 'config'), conf, { recursive: true });
  for (const d of ['data', 'logs', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
  const env = { ...process.env, ES_JAVA_HOME: stack.java, ES_PATH_CONF: conf, ES_TMPDIR: join(dir, 'tmp'), ES_JAVA_OPTS: '-Xms512m -Xmx512m' };
  const bin = join(home, 'bin', 'elasticsearch');
  const [command, args] = asRoot ? ['setpriv', [`--reuid=${ES_UID}`, `--regid=${ES_UID}`, '--clear-groups', bin]] : [bin, []];
  return onFreePorts(async () => {
    const [port, transport] = [await stablePort(), await stablePort()];
    writeFileSync(
      join(conf, 'elasticsearch.yml'),
      stringify({
        'cluster.name': 'agent-sidecar-e2e',
        'node.name': 'e2e',
        'discovery.type': 'single-node',
        'network.host': HOST,
        'http.port': port,
        'transport.port': transport,
        'path.data': join(dir, 'data'),
        'path.logs': join(dir, 'logs'),
        'xpack.security.enabled': false,
        // A nearly full disk on a shared machine must not turn the indices read-only mid-test.
        'cluster.routing.allocation.disk.threshold_enabled': false,
      }),
    );
    if (asRoot) chownTree(dir, ES_UID);
    const url = `http://${HOST}:${port}`;
    const service = await restartable(dir, async () => {
      const child = startChild('elasticsearch', command, args, { env, stdoutFile: join(dir, 'stdout.log') });
      try {
        await waitFor200(`${url}/_cluster/health?wait_for_status=yellow&timeout=1s`, child, READY_MS);
      } catch (err) {
        await stopChild(child, 1000);
        throw new Error(`${(err as Error).message}\n${logTail(join(dir, 'logs', 'agent-sidecar-e2e.log'))}`, { cause: err });
      }
      return child;
    });
    return Object.assign(service, { url });
  });
}

export interface Jaeger {
  readonly child: Child;
  readonly otlpEndpoint: string;
  readonly queryUrl: string;
  readonly metricsUrl: string;
}

/** Jaeger v2 with config/jaeger/config.yaml: OTLP gRPC in, memory storage, the query API. */
export function startJaeger(stack: Stack, dir: string): Promise<Jaeger> {
  return onFreePorts(() => launchJaeger(stack, dir));
}

async function launchJaeger(stack: Stack, dir: string): Promise<Jaeger> {
  mkdirSync(dir, { recursive: true });
  const [otlp, query, grpc, health, metrics] = await Promise.all([stablePort(), stablePort(), stablePort(), stablePort(), stablePort()]);
  const env = {
    ...process.env,
    JAEGER_OTLP_GRPC_ENDPOINT: `${HOST}:${otlp}`,
    JAEGER_QUERY_HTTP_ENDPOINT: `${HOST}:${query}`,
    JAEGER_QUERY_GRPC_ENDPOINT: `${HOST}:${grpc}`,
    JAEGER_HEALTH_ENDPOINT: `${HOST}:${health}`,
    JAEGER_METRICS_HOST: HOST,
    JAEGER_METRICS_PORT: String(metrics),
  };
  const child = startChild('jaeger', stack.jaeger, ['--config', join(REPO, 'config', 'jaeger', 'config.yaml')], { env, stdoutFile: join(dir, 'stdout.log') });
  await waitFor200(`http://${HOST}:${health}/status`, child, READY_MS);
  return { child, otlpEndpoint: `${HOST}:${otlp}`, queryUrl: `http://${HOST}:${query}`, metricsUrl: `http://${HOST}:${metrics}/metrics` };
}

export interface Collector extends Restartable {
  readonly otlpEndpoint: string;
  /** The OTLP/HTTP receiver's base URL (POST /v1/traces). */
  readonly otlpHttpUrl: string;
  /** The Prometheus exporter (the sidecar's metrics). */
  readonly exporterTarget: string;
  /** The collector's own metrics (otelcol_*). */
  readonly telemetryTarget: string;
  readonly storageDir: string;
}

export interface CollectorOptions {
  /** Overlays on collector/otelcol.yaml, in order: names of collector/profiles/*.yaml. */
  profile: string | readonly string[];
  elasticsearch: string;
  jaegerOtlp: string;
  /** Configuration files of the test's own, merged after the profiles. */
  overlays?: readonly string[];
  /** Where the OTLP/gRPC receiver binds (host:port); a free port on 127.0.0.1 by default. */
  otlpGrpc?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * A file the collector reads as /etc/hosts, bind-mounted in a mount namespace of its own
   * (needs root): what a DNS name resolves to, for this collector alone. The collector's Go
   * resolver reads the hosts file first, and again when it changes (every 5 s at most).
   */
  hosts?: string;
}

/** The built distribution with collector/otelcol.yaml and profile overlays. */
export function startCollector(stack: Stack, dir: string, options: CollectorOptions): Promise<Collector> {
  return onFreePorts(() => launchCollector(stack, dir, options));
}

async function launchCollector(stack: Stack, dir: string, options: CollectorOptions): Promise<Collector> {
  mkdirSync(dir, { recursive: true });
  const [grpc, http, exporter, telemetry, health, pprof, zpages] = await Promise.all(Array.from({ length: 7 }, () => stablePort()));
  const grpcAddress = options.otlpGrpc ?? `${HOST}:${grpc}`;
  const storageDir = join(dir, 'storage');
  const env = {
    ...process.env,
    OTELCOL_OTLP_GRPC_ENDPOINT: grpcAddress,
    OTELCOL_OTLP_HTTP_ENDPOINT: `${HOST}:${http}`,
    OTELCOL_PROMETHEUS_ENDPOINT: `${HOST}:${exporter}`,
    OTELCOL_TELEMETRY_HOST: HOST,
    OTELCOL_TELEMETRY_PORT: String(telemetry),
    OTELCOL_HEALTH_ENDPOINT: `${HOST}:${health}`,
    OTELCOL_PPROF_ENDPOINT: `${HOST}:${pprof}`,
    OTELCOL_ZPAGES_ENDPOINT: `${HOST}:${zpages}`,
    OTELCOL_STORAGE_DIR: storageDir,
    ELASTICSEARCH_ENDPOINT: options.elasticsearch,
    JAEGER_OTLP_ENDPOINT: options.jaegerOtlp,
    DEPLOYMENT_ENVIRONMENT: 'e2e',
    ...options.env,
  };
  const profiles = typeof options.profile === 'string' ? [options.profile] : options.profile;
  const configs = [
    join(REPO, 'collector', 'otelcol.yaml'),
    ...profiles.map((p) => join(REPO, 'collector', 'profiles', `${p}.yaml`)),
    ...(options.overlays ?? []),
  ].flatMap((c) => ['--config', c]);
  const [command, args] =
    options.hosts === undefined
      ? [stack.collector, configs]
      : [
          requireTool('unshare', 'util-linux'),
          ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', options.hosts, stack.collector, ...configs],
        ];
  const service = await restartable(dir, async (run) => {
    const child = startChild('otelcol', command, args, { env, stdoutFile: join(dir, `stdout-${run}.log`) });
    await waitFor200(`http://${HOST}:${health}/`, child, READY_MS);
    return child;
  });
  return Object.assign(service, {
    otlpEndpoint: `http://${grpcAddress}`,
    otlpHttpUrl: `http://${HOST}:${http}`,
    exporterTarget: `${HOST}:${exporter}`,
    telemetryTarget: `${HOST}:${telemetry}`,
    storageDir,
  });
}

export interface Prometheus {
  readonly child: Child;
  readonly url: string;
}

/**
 * Prometheus with config/prometheus/prometheus.yml and its rule files, the scrape targets
 * replaced by the loopback ones and scraped every second. Jobs the test has no target for
 * (Alertmanager, Prometheus itself) are left out.
 */
export function startPrometheus(stack: Stack, dir: string, targets: Record<string, string>): Promise<Prometheus> {
  return onFreePorts(() => launchPrometheus(stack, dir, targets));
}

async function launchPrometheus(stack: Stack, dir: string, targets: Record<string, string>): Promise<Prometheus> {
  mkdirSync(dir, { recursive: true });
  const shipped = join(REPO, 'config', 'prometheus', 'prometheus.yml');
  const config = parse(readFileSync(shipped, 'utf8')) as {
    global: Record<string, unknown>;
    rule_files: string[];
    alerting?: unknown;
    scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }>; scrape_interval?: string }>;
  };
  config.global.scrape_interval = '1s';
  config.global.evaluation_interval = '1s';
  delete config.alerting;
  config.rule_files = config.rule_files.map((f) => join(REPO, 'config', 'prometheus', f));
  config.scrape_configs = config.scrape_configs
    .filter((job) => targets[job.job_name] !== undefined)
    .map((job) => ({ ...job, scrape_interval: '1s', static_configs: [{ targets: [targets[job.job_name]!] }] }));
  const missing = Object.keys(targets).filter((name) => !config.scrape_configs.some((j) => j.job_name === name));
  if (missing.length > 0) throw new Error(`${shipped} has no scrape job ${missing.join(', ')}`);
  const file = join(dir, 'prometheus.yml');
  writeFileSync(file, stringify(config));
  const port = await stablePort();
  const child = startChild(
    'prometheus',
    stack.tools.prometheus,
    [`--config.file=${file}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${HOST}:${port}`, '--web.enable-lifecycle'],
    { stdoutFile: join(dir, 'stdout.log') },
  );
  const url = `http://${HOST}:${port}`;
  await waitFor200(`${url}/-/ready`, child, READY_MS);
  return { child, url };
}

/**
 * The demo agent (src/demo/agent.ts) with an MCP server on /mcp (test/e2e/agent-server.ts) as
 * its own process, restartable on its port.
 */
export function startDemoAgent(dir: string): Promise<Restartable & Server> {
  return onFreePorts(() => launchDemoAgent(dir));
}

async function launchDemoAgent(dir: string): Promise<Restartable & Server> {
  mkdirSync(dir, { recursive: true });
  const port = await stablePort();
  const url = `http://${HOST}:${port}/`;
  const script = join(REPO, 'test', 'e2e', 'agent-server.ts');
  const service = await restartable(dir, async () => {
    const child = startChild('demo-agent', process.execPath, [script, String(port), HOST], {
      env: { ...process.env, AGENT_TOKEN_DELAY_MS: '5' },
      stdoutFile: join(dir, 'stdout.log'),
    });
    await waitFor200(`${url}health`, child, READY_MS);
    return child;
  });
  return Object.assign(service, { name: 'demo-agent', url });
}

export interface SidecarUnderTest extends Server {
  readonly adminUrl: string;
}

/** The sidecar CLI with telemetry to the collector, exporting often so the test waits little. */
export async function startTelemetrySidecar(
  dir: string,
  agent: Server,
  options: { collector: string; extraConfig: string; env: NodeJS.ProcessEnv },
): Promise<SidecarUnderTest> {
  mkdirSync(dir, { recursive: true });
  const server = await startSidecar(dir, agent, {
    name: 'sidecar',
    cpus: undefined,
    // The working tree's code, whether or not dist/ was rebuilt since.
    entry: SIDECAR_SOURCE,
    logLevel: 'warn',
    env: options.env,
    stdoutFile: join(dir, 'stdout.log'),
    extraConfig: `${options.extraConfig}
telemetry:
  endpoint: ${options.collector}
  serviceName: support-agent
  environment: e2e
  metrics: { exportInterval: 1s }
  traces: { scheduledDelay: 200ms }
  logs: { scheduledDelay: 200ms, stdout: false }
`,
  });
  return server as SidecarUnderTest;
}
