import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { AGENTGATEWAY_ENV, AGENTGATEWAY_MARK, findAgentgateway, startAgentgateway, verifyAgentgatewayTelemetry } from './lib/agentgateway.ts';
import { AUTH_PATH, AUTH_ROLES, OTHER_ROLES, sidecarAuthConfig, startAuthFixture, WRITER_ROLES, type AuthFixture } from './lib/auth.ts';
import { EGRESS_REQUEST, egressConfig, missingFeature, PROTECT_PATH, protectBody, protectionConfig } from './lib/features.ts';
import { collectMeta, type RunMeta } from './lib/meta.ts';
import { freePort, HOST } from './lib/net.ts';
import { startOauth2Proxy } from './lib/oauth2-proxy.ts';
import {
  ALL_SCENARIOS,
  AUTH_SCENARIOS,
  DEFAULT_TARGETS,
  parseOptions,
  STREAM_SCENARIOS,
  SUBJECT,
  TELEMETRY_SCENARIOS,
  USAGE,
  type BenchOptions,
  type Scenario,
  NODE_TARGETS,
  type SidecarTarget,
  type TargetName,
} from './lib/options.ts';
import { RssSampler, treeAnonBytes, treeCpuSeconds, treeHwmBytes } from './lib/proc.ts';
import { installCleanup, runChecked, stopAll, tail } from './lib/procs.ts';
import { compare, emptyMeasurements, render, warnings, type Measurements, type PeerTelemetry, type TelemetryNote } from './lib/report.ts';
import {
  checkRefuses,
  checkServes,
  NGINX,
  SIDECAR_BIN,
  SIDECAR_SOURCE,
  startBareProxy,
  startNginxProxy,
  startSidecar,
  startUpstream,
  targetUrl,
  type RequestShape,
  type Server,
  type SidecarStartOptions,
} from './lib/servers.ts';
import { runSoak } from './lib/soak.ts';
import { checkStream, runStreams, startSseUpstream } from './lib/sse.ts';
import { performanceTable, type ScenarioRun } from './lib/summary.ts';
import { envWithoutOtel, sidecarTelemetryConfig, startTelemetryFixture, verifyTelemetry, type TelemetryFixture } from './lib/telemetry.ts';
import { ensureGoTool, OAUTH2_PROXY, requireTool, VEGETA } from './lib/tools.ts';
import { runVegeta, warmVegeta } from './lib/vegeta.ts';
import { runWrk, writeWrkScript } from './lib/wrk.ts';

/**
 * npm run bench: the same load direct to an upstream, through the peers (nginx, oauth2-proxy, agentgateway),
 * through a bare node:http + undici proxy and through the sidecar in the configurations of
 * each scenario; saturation with wrk, latency at a constant rate with vegeta, SSE streams
 * with the bench's stream client. See bench/README.md.
 */

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const TSC = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
const BUILD_CONFIG = fileURLToPath(new URL('../tsconfig.build.json', import.meta.url));
const BUNDLE_SCRIPT = fileURLToPath(new URL('../scripts/bundle.ts', import.meta.url));
const POLICY_EXAMPLE = fileURLToPath(new URL('../config/policy.example.yaml', import.meta.url));
const PAUSE_MS = 500;
/** How often each server's RSS is sampled while measured. */
const RSS_SAMPLE_MS = 200;

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

interface Cpus {
  load: string | undefined;
  servers: string | undefined;
}

interface Tools {
  wrk: string;
  vegeta: string;
  /** Installed on first use by a scenario with oauth2-proxy among its targets. */
  oauth2Proxy?: string;
  /** Never installed by the bench: the binary when it is there (else the target is left out). */
  agentgateway?: string;
}

function cpuPlan(o: BenchOptions): Cpus {
  if (!o.pin) return { load: undefined, servers: undefined };
  if (os.availableParallelism() < 2) throw new Error('--pin needs at least 2 CPUs');
  requireTool('taskset', 'install util-linux or run without --pin');
  return { load: '0', servers: '1' };
}

/**
 * Every measured request of a scenario, the same for every target: GET / without credentials;
 * with auth an analyst's bearer token on a policy route; with protect a 4 KB JSON POST by a
 * caller allowed to create; with egress a streamed chat completion.
 */
function requestShape(scenario: Scenario, auth: AuthFixture | undefined): RequestShape {
  if (scenario === 'egress') return { ...EGRESS_REQUEST, headers: { ...EGRESS_REQUEST.headers } };
  if (auth === undefined) return { path: '/', headers: {} };
  if (scenario === 'protect') {
    return {
      path: PROTECT_PATH,
      method: 'POST',
      headers: { authorization: `Bearer ${auth.writerToken}`, 'content-type': 'application/json' },
      body: protectBody(),
    };
  }
  return { path: AUTH_PATH, headers: { authorization: `Bearer ${auth.token}` } };
}

interface Fixtures {
  auth: AuthFixture | undefined;
  telemetry: TelemetryFixture | undefined;
  /** agentgateway's own OTLP receiver in full (its traces are never counted as the sidecar's). */
  agentgatewayTelemetry: TelemetryFixture | undefined;
}

/** How each sidecar target of a scenario is configured on top of the defaults. */
function sidecarPlan(
  t: SidecarTarget,
  o: BenchOptions,
  scenario: Scenario,
  f: Fixtures,
  tmp: string,
  egressAddress: string,
  providerOrigin: string,
): Omit<SidecarStartOptions, 'cpus' | 'cpuProfileDir'> {
  // Sidecars without telemetry (on by default): OTEL_SDK_DISABLED=true, and no OTEL_* variable of this shell.
  const offEnv = envWithoutOtel({ OTEL_SDK_DISABLED: 'true' });
  const authYaml = () => {
    if (f.auth === undefined) throw new Error(`${t} needs --scenario ${AUTH_SCENARIOS.join(' or ')}`);
    const policyFile = join(tmp, 'policy.yaml');
    copyFileSync(POLICY_EXAMPLE, policyFile);
    return sidecarAuthConfig(f.auth, policyFile);
  };
  const telemetry = () => {
    if (f.telemetry === undefined) throw new Error(`${t} needs --scenario ${TELEMETRY_SCENARIOS.join(' or ')}`);
    const logs = o.telemetrySignals.includes('logs');
    return {
      yaml: sidecarTelemetryConfig(f.telemetry.endpoint, o.telemetrySignals),
      // Access lines go to stdout at info: with logs, the level must let them through.
      logLevel: logs ? 'info' : 'warn',
      env: envWithoutOtel(),
      stdoutFile: join(tmp, `${t}-stdout.jsonl`),
    };
  };
  const signals = o.telemetrySignals.join(', ');
  switch (t) {
    case 'sidecar':
      return { name: t, env: offEnv };
    case 'sidecar-auth':
      return {
        name: t,
        extraConfig: authYaml(),
        env: offEnv,
        comment:
          'Defaults except addresses and log level, plus JWT RS256 from the bench JWKS and the reference RBAC policy (a copy of config/policy.example.yaml).',
      };
    case 'sidecar-telemetry': {
      const tel = telemetry();
      return {
        name: t,
        extraConfig: tel.yaml,
        logLevel: tel.logLevel,
        env: tel.env,
        stdoutFile: tel.stdoutFile,
        comment: `Defaults except addresses and log level, plus telemetry (${signals}) over OTLP gRPC to the bench's receiver.`,
      };
    }
    case 'sidecar-full':
    case 'sidecar-protect': {
      const tel = telemetry();
      let extra = `${authYaml()}${tel.yaml}`;
      if (t === 'sidecar-protect') {
        const protection = protectionConfig();
        if (protection === undefined) throw new Error(missingFeature('protect') ?? 'no protection configuration');
        extra += protection;
      }
      return {
        name: t,
        extraConfig: extra,
        logLevel: tel.logLevel,
        env: tel.env,
        stdoutFile: tel.stdoutFile,
        comment: `The full ingress chain: JWT RS256 + the reference RBAC policy, telemetry (${signals}) over OTLP gRPC${t === 'sidecar-protect' ? ', body protection' : ''}.`,
      };
    }
    case 'sidecar-egress': {
      const egress = egressConfig({ address: egressAddress, providerOrigin });
      if (egress === undefined) throw new Error(missingFeature('egress') ?? 'no egress configuration');
      return {
        name: t,
        extraConfig: egress.yaml,
        env: offEnv,
        comment: 'Defaults except addresses and log level, plus the egress listener with the bench SSE upstream as its OpenAI provider.',
      };
    }
  }
}

/** The sidecar target that exports telemetry to the receiver (verified, and counted while measured). */
function exporterOf(targets: readonly TargetName[]): TargetName | undefined {
  // The scenario's own sidecar first: in protect, sidecar-protect rather than sidecar-full.
  return (['sidecar-protect', 'sidecar-full', 'sidecar-telemetry'] as const).find((t) => targets.includes(t));
}

function isSidecar(t: TargetName): t is SidecarTarget {
  return t.startsWith('sidecar');
}

async function startServers(
  o: BenchOptions,
  scenario: Scenario,
  targets: readonly TargetName[],
  tmp: string,
  cpus: Cpus,
  f: Fixtures,
  tools: Tools,
  shape: RequestShape,
): Promise<Map<TargetName, Server>> {
  const servers = new Map<TargetName, Server>();
  const streaming = STREAM_SCENARIOS.includes(scenario);
  const upstream = streaming ? await startSseUpstream(o.events, cpus.servers) : await startUpstream(tmp, cpus.servers);
  servers.set('direct', upstream);
  if (targets.includes('nginx')) servers.set('nginx', await startNginxProxy(tmp, upstream, cpus.servers, { streaming }));
  if (targets.includes('undici-proxy')) servers.set('undici-proxy', await startBareProxy(upstream, cpus.servers));
  if (targets.includes('oauth2-proxy')) {
    if (f.auth === undefined) throw new Error(`oauth2-proxy needs --scenario ${AUTH_SCENARIOS.join(' or ')}`);
    tools.oauth2Proxy ??= await ensureGoTool(OAUTH2_PROXY, log);
    const roles = scenario === 'protect' ? WRITER_ROLES : AUTH_ROLES;
    const peer = await startOauth2Proxy(tools.oauth2Proxy, tmp, upstream, f.auth, roles, cpus.servers);
    servers.set('oauth2-proxy', peer);
    await checkAuthOn(peer, shape, f.auth);
    await checkRefuses(
      peer,
      { ...shape, headers: { ...shape.headers, authorization: `Bearer ${f.auth.token.slice(0, -8)}AAAAAAAA` } },
      403,
      'a token with a broken signature',
    );
  }
  let agentgateway: Awaited<ReturnType<typeof startAgentgateway>> | undefined;
  if (targets.includes('agentgateway')) {
    if (tools.agentgateway === undefined) throw new Error('agentgateway is among the targets but its binary was not found');
    agentgateway = await startAgentgateway(tools.agentgateway, tmp, upstream, {
      auth: f.auth && { issuer: f.auth.issuer, jwksUrl: f.auth.jwksUrl, roles: AUTH_ROLES },
      tracingEndpoint: f.agentgatewayTelemetry?.endpoint,
      cpus: cpus.servers,
    });
    servers.set('agentgateway', agentgateway);
    if (f.auth !== undefined) {
      await checkAuthOn(agentgateway, shape, f.auth);
      // A token that fails verification is a 401 here (RFC 6750 invalid_token), where oauth2-proxy answers 403.
      await checkRefuses(
        agentgateway,
        { ...shape, headers: { ...shape.headers, authorization: `Bearer ${f.auth.token.slice(0, -8)}AAAAAAAA` } },
        401,
        'a token with a broken signature',
      );
    }
  }
  const cpuProfileDir = o.cpuProfile ? join(RESULTS_DIR, 'profiles') : undefined;
  if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });
  const egressPort = await freePort();
  for (const t of targets) {
    if (!isSidecar(t)) continue;
    const plan = sidecarPlan(t, o, scenario, f, tmp, `${HOST}:${egressPort}`, upstream.url.replace(/\/$/, ''));
    const started = await startSidecar(tmp, upstream, {
      ...plan,
      cpus: cpus.servers,
      cpuProfileDir,
      entry: o.source ? SIDECAR_SOURCE : SIDECAR_BIN,
      nodeFlags: o.nodeFlags,
    });
    if (t === 'sidecar-egress') {
      // The load goes to the egress listener, under its provider's path prefix.
      const egress = egressConfig({ address: `${HOST}:${egressPort}`, providerOrigin: upstream.url.replace(/\/$/, '') })!;
      servers.set(t, { ...started, url: `http://${HOST}:${egressPort}/`, basePath: egress.basePath });
    } else {
      servers.set(t, started);
    }
    if (f.auth !== undefined && t !== 'sidecar') {
      await checkAuthOn(started, shape, f.auth);
      // A path outside the policy is denied too.
      await checkRefuses(started, { ...shape, path: '/not-in-the-policy' }, 403, `the measured caller on a path no route matches`);
    }
    if (t === 'sidecar-protect') {
      // Protection is really on the route: a body that is not JSON is refused rather than passed on.
      await checkRefuses(started, { ...shape, body: '{"not json' }, 400, 'a body that does not parse on a protected route');
    }
  }
  for (const s of servers.values()) {
    if (streaming) await checkStream(s, targetUrl(s, shape), shape, o.events);
    else await checkServes(s, shape);
  }
  const exporter = exporterOf(targets);
  if (f.telemetry !== undefined && exporter !== undefined) {
    const stdoutFile = join(tmp, `${exporter}-stdout.jsonl`);
    await verifyTelemetry(f.telemetry, servers.get(exporter), servers.get('sidecar'), o.telemetrySignals, stdoutFile, log, shape);
  }
  if (f.agentgatewayTelemetry !== undefined && agentgateway !== undefined) await verifyAgentgatewayTelemetry(f.agentgatewayTelemetry, agentgateway, shape, log);
  return servers;
}

/** Authentication and authorization really are on: no token is refused with 401, a valid token of a role the route does not admit with 403. */
async function checkAuthOn(server: Server, shape: RequestShape, auth: AuthFixture): Promise<void> {
  const { authorization: _drop, ...noToken } = shape.headers;
  await checkRefuses(server, { ...shape, headers: noToken }, 401, 'no bearer token');
  await checkRefuses(
    server,
    { ...shape, headers: { ...shape.headers, authorization: `Bearer ${auth.otherRoleToken}` } },
    403,
    `a valid token for roles ${OTHER_ROLES.join(',')}`,
  );
}

/** Around each measured phase of a target: what to record (the telemetry scenarios' receiver counts and CPU). */
interface PhaseWatch {
  begin(target: TargetName, phase: 'saturation' | 'rate'): void;
  end(target: TargetName, phase: 'saturation' | 'rate', requests: number): void;
}

function telemetryWatch(fixture: TelemetryFixture, signals: readonly string[], exporter: TargetName): PhaseWatch & { note(): TelemetryNote } {
  const phases: TelemetryNote['phases'] = [];
  let start: { counts: ReturnType<TelemetryFixture['counts']>; cpu: NodeJS.CpuUsage; at: bigint } | undefined;
  return {
    begin(target) {
      if (target === exporter) start = { counts: fixture.counts(), cpu: process.cpuUsage(), at: process.hrtime.bigint() };
    },
    end(target, phase, requests) {
      if (target !== exporter || start === undefined) return;
      const c = fixture.counts();
      const cpu = process.cpuUsage(start.cpu);
      const wallUs = Number(process.hrtime.bigint() - start.at) / 1e3;
      phases.push({
        phase,
        requests,
        spans: c.spans - start.counts.spans,
        logRecords: c.logRecords - start.counts.logRecords,
        metricExports: c.requests.metrics - start.counts.requests.metrics,
        benchCpuPercent: ((cpu.user + cpu.system) / wallUs) * 100,
      });
      start = undefined;
    },
    note: () => ({ signals, phases, dropped: fixture.counts().dropped }),
  };
}

/** Both watches, when there are two (the sidecar's receiver and agentgateway's). */
function bothWatches(a: PhaseWatch | undefined, b: PhaseWatch | undefined): PhaseWatch | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return {
    begin(target, phase) {
      a.begin(target, phase);
      b.begin(target, phase);
    },
    end(target, phase, requests) {
      a.end(target, phase, requests);
      b.end(target, phase, requests);
    },
  };
}

function assertAlive(servers: Map<TargetName, Server>): void {
  for (const s of servers.values()) {
    const p = s.child.proc;
    if (p.exitCode !== null || p.signalCode !== null) {
      throw new Error(`${s.name} exited (${p.exitCode ?? p.signalCode}) during the run:\n${tail(s.child.stderr() || s.child.stdout())}`);
    }
  }
}

/**
 * One measured phase of one target: its CPU seconds and largest RSS alongside. The upstream's
 * CPU and memory are not a proxy's: `direct` gets neither.
 */
interface PhaseCost {
  cpuSeconds?: number;
  rssBytes?: number;
  anonBytes?: number;
}

async function phase<T>(t: TargetName, server: Server, run: () => Promise<T>): Promise<{ result: T } & PhaseCost> {
  if (t === 'direct') return { result: await run() };
  const pid = server.child.proc.pid!;
  const cpuBefore = treeCpuSeconds(pid);
  const sampler = new RssSampler(pid, RSS_SAMPLE_MS);
  const anon = new RssSampler(pid, RSS_SAMPLE_MS, treeAnonBytes);
  let result: T;
  try {
    result = await run();
  } finally {
    sampler.stop();
    anon.stop();
  }
  return { result, cpuSeconds: treeCpuSeconds(pid) - cpuBefore, rssBytes: sampler.peak(), anonBytes: anon.peak() };
}

type PerTargetOf<T> = Partial<Record<TargetName, T>>;

function record<T>(
  into: { results: PerTargetOf<T>; cpu: PerTargetOf<number>; rss: PerTargetOf<number>; anon: PerTargetOf<number> },
  t: TargetName,
  p: { result: T } & PhaseCost,
): T {
  into.results[t] = p.result;
  if (p.cpuSeconds !== undefined) into.cpu[t] = p.cpuSeconds;
  if (p.rssBytes !== undefined) into.rss[t] = p.rssBytes;
  if (p.anonBytes !== undefined) into.anon[t] = p.anonBytes;
  return p.result;
}

/**
 * The constant rate comes first, on servers that have only been warmed up: its CPU and RSS
 * are what a sidecar costs at 1000 req/s. Saturation grows the heap to what overload needs and
 * V8 keeps it for a while; that peak is reported with the saturation phase, not as the
 * figure at 1000 req/s.
 */
async function measureRate(
  o: BenchOptions,
  targets: readonly TargetName[],
  tmp: string,
  cpus: Cpus,
  servers: Map<TargetName, Server>,
  tools: Tools,
  shape: RequestShape,
  m: Measurements,
  watch?: PhaseWatch,
): Promise<void> {
  for (const t of targets) {
    const url = targetUrl(servers.get(t)!, shape);
    const vegetaOpts = { rate: o.rate, cpus: cpus.load, dir: tmp, headers: shape.headers, method: shape.method, body: shape.body };
    // Node.js servers get longer: V8 optimizes their hot path only after many requests.
    const warmup = NODE_TARGETS.includes(t) ? Math.max(o.warmupSeconds, o.rateWarmupSeconds) : o.warmupSeconds;
    if (warmup > 0) await warmVegeta(tools.vegeta, url, { ...vegetaOpts, seconds: warmup, name: `${t}-warmup` });
    await sleep(PAUSE_MS);
    log(`constant rate: ${t} (vegeta ${o.rate} req/s, ${o.rateSeconds}s)`);
    watch?.begin(t, 'rate');
    const r = record(
      { results: m.rate, cpu: m.cpuSeconds.rate, rss: m.rssBytes.rate, anon: m.anonBytes.rate },
      t,
      await phase(t, servers.get(t)!, () => runVegeta(tools.vegeta, url, { ...vegetaOpts, seconds: o.rateSeconds, name: t })),
    );
    watch?.end(t, 'rate', r.requests);
    assertAlive(servers);
    await sleep(PAUSE_MS);
  }
}

async function measureSaturation(
  o: BenchOptions,
  targets: readonly TargetName[],
  tmp: string,
  cpus: Cpus,
  servers: Map<TargetName, Server>,
  tools: Tools,
  shape: RequestShape,
  m: Measurements,
  watch?: PhaseWatch,
): Promise<void> {
  const script = writeWrkScript(tmp, shape);
  const wrkOpts = { threads: o.threads, connections: o.connections, cpus: cpus.load, headers: shape.headers };
  for (const t of targets) {
    const url = targetUrl(servers.get(t)!, shape);
    if (o.warmupSeconds > 0) await runWrk(tools.wrk, script, url, { ...wrkOpts, seconds: o.warmupSeconds });
    await sleep(PAUSE_MS);
    log(`saturation: ${t} (wrk -t${o.threads} -c${o.connections}, ${o.saturationSeconds}s)`);
    watch?.begin(t, 'saturation');
    const r = record(
      { results: m.saturation, cpu: m.cpuSeconds.saturation, rss: m.rssBytes.saturation, anon: m.anonBytes.saturation },
      t,
      await phase(t, servers.get(t)!, () => runWrk(tools.wrk, script, url, { ...wrkOpts, seconds: o.saturationSeconds })),
    );
    watch?.end(t, 'saturation', r.requests);
    assertAlive(servers);
    await sleep(PAUSE_MS);
  }
}

/** The SSE scenarios: each target in turn, `streams` concurrent streams for --duration seconds after a warm-up. */
async function measureStreams(
  o: BenchOptions,
  targets: readonly TargetName[],
  tmp: string,
  cpus: Cpus,
  servers: Map<TargetName, Server>,
  shape: RequestShape,
  m: Measurements,
): Promise<void> {
  for (const t of targets) {
    const url = targetUrl(servers.get(t)!, shape);
    const opts = { streams: o.streams, events: o.events, dir: tmp, cpus: cpus.load };
    if (o.warmupSeconds > 0) await runStreams(url, shape, { ...opts, seconds: o.warmupSeconds, name: `${t}-warmup` });
    await sleep(PAUSE_MS);
    log(`streams: ${t} (${o.streams} concurrent streams of ${o.events} events, ${o.saturationSeconds}s)`);
    record(
      { results: m.streams, cpu: m.cpuSeconds.streams, rss: m.rssBytes.streams, anon: m.anonBytes.streams },
      t,
      await phase(t, servers.get(t)!, () => runStreams(url, shape, { ...opts, seconds: o.saturationSeconds, name: t })),
    );
    assertAlive(servers);
    await sleep(PAUSE_MS);
  }
}

function describeShape(shape: RequestShape, scenario: Scenario): string {
  const auth = shape.headers.authorization?.startsWith('Bearer ey')
    ? ` with Authorization: Bearer <RS256 token, roles ${(scenario === 'protect' ? WRITER_ROLES : AUTH_ROLES).join(',')}>`
    : '';
  const body = shape.body === undefined ? '' : ` and a ${Buffer.byteLength(shape.body)}-byte ${shape.headers['content-type'] ?? ''} body`;
  const stream = STREAM_SCENARIOS.includes(scenario) ? ', answered with an SSE stream' : '';
  return `${shape.method ?? 'GET'} ${shape.path}${auth}${body}${stream}`;
}

/** One scenario: fixtures, servers, checks, measurements, soak; printed and returned. */
async function runScenario(
  o: BenchOptions,
  scenario: Scenario,
  requested: readonly TargetName[],
  cpus: Cpus,
  tools: Tools,
  meta: RunMeta,
  soak: boolean,
): Promise<ScenarioRun> {
  // agentgateway is left out when its binary is not there (main says so once).
  const targets = requested.filter((t) => t !== 'agentgateway' || tools.agentgateway !== undefined);
  const tmp = mkdtempSync(join(os.tmpdir(), `agent-sidecar-bench-${scenario}-`));
  let ok = false;
  const f: Fixtures = { auth: undefined, telemetry: undefined, agentgatewayTelemetry: undefined };
  try {
    const startedAt = new Date().toISOString();
    log(`scenario ${scenario}: servers and configs in ${tmp}`);
    if (AUTH_SCENARIOS.includes(scenario)) {
      f.auth = await startAuthFixture();
      log(
        `JWKS and OIDC discovery at ${f.auth.issuer}; RS256 tokens for roles ${AUTH_ROLES.join(',')}, ${WRITER_ROLES.join(',')} and ${OTHER_ROLES.join(',')}`,
      );
    }
    const exporter = exporterOf(targets);
    if (TELEMETRY_SCENARIOS.includes(scenario) && exporter !== undefined) {
      f.telemetry = await startTelemetryFixture();
      log(
        `OTLP gRPC receiver at ${f.telemetry.endpoint}${f.telemetry.onDefaultPort ? ' (the default endpoint)' : ''}; ${exporter} records ${o.telemetrySignals.join(', ')}`,
      );
    }
    if (scenario === 'full' && targets.includes('agentgateway')) {
      f.agentgatewayTelemetry = await startTelemetryFixture({ mark: AGENTGATEWAY_MARK });
      log(`OTLP gRPC receiver for agentgateway at ${f.agentgatewayTelemetry.endpoint}; agentgateway records traces and its access log`);
    }
    const shape = requestShape(scenario, f.auth);
    const servers = await startServers(o, scenario, targets, tmp, cpus, f, tools, shape);
    const sidecarWatch = f.telemetry && exporter ? telemetryWatch(f.telemetry, o.telemetrySignals, exporter) : undefined;
    const agentgatewayWatch = f.agentgatewayTelemetry ? telemetryWatch(f.agentgatewayTelemetry, ['traces'], 'agentgateway') : undefined;
    const watch = bothWatches(sidecarWatch, agentgatewayWatch);
    const m = emptyMeasurements();
    const stream = STREAM_SCENARIOS.includes(scenario);
    if (stream) await measureStreams(o, targets, tmp, cpus, servers, shape, m);
    else await measureRate(o, targets, tmp, cpus, servers, tools, shape, m, watch);
    const subject = SUBJECT[scenario];
    if (soak && o.soakMinutes > 0) {
      const server = servers.get(subject);
      if (stream || server === undefined) {
        log(`no soak in scenario ${scenario}: it needs the constant-rate phase and ${subject} among the targets`);
      } else {
        log(`soak: ${subject} at ${o.rate} req/s for ${o.soakMinutes} min, RSS every 10 s`);
        m.soak = await runSoak(tools.vegeta, targetUrl(server, shape), {
          rate: o.rate,
          cpus: cpus.load,
          dir: tmp,
          name: `${subject}-soak`,
          headers: shape.headers,
          method: shape.method,
          body: shape.body,
          minutes: o.soakMinutes,
          target: subject,
          pid: server.child.proc.pid!,
        });
        assertAlive(servers);
      }
    }
    if (!stream) await measureSaturation(o, targets, tmp, cpus, servers, tools, shape, m, watch);
    for (const [t, s] of servers) if (t !== 'direct') m.hwmBytes[t] = treeHwmBytes(s.child.proc.pid!);
    await stopAll(); // before printing, so a --cpu-prof profile is written
    const telemetryNote = sidecarWatch?.note();
    const peerTelemetry: PeerTelemetry[] = agentgatewayWatch
      ? [{ target: 'agentgateway', what: 'traces over OTLP gRPC to a receiver of its own, access log to stdout', note: agentgatewayWatch.note() }]
      : [];
    const cmp = compare(m, { subject: targets.includes(subject) ? subject : undefined });
    const pinning = o.pin ? `load generator on CPU ${cpus.load}, servers on CPU ${cpus.servers}` : 'no CPU pinning';
    const warm = o.warmupSeconds > 0 ? ` after ${o.warmupSeconds}s warm-up` : '';
    process.stdout.write(
      [
        '',
        `agent-sidecar benchmark  ${meta.gitCommit}  ${meta.cpus} CPUs (${meta.cpuModel}), ${pinning}`,
        `Scenario ${scenario}: every target gets ${describeShape(shape, scenario)}${
          f.telemetry && exporter ? `; ${exporter} records ${o.telemetrySignals.join(', ')} (OTLP gRPC to ${f.telemetry.endpoint}, metrics every 5s)` : ''
        }`,
        `Node ${meta.node}, ${meta.nginx}, ${meta.wrk}, vegeta ${meta.vegeta}${targets.includes('agentgateway') && meta.agentgateway ? `, agentgateway ${meta.agentgateway}` : ''}; load average before the run ${meta.loadAverage.join(' ')}`,
        `The sidecar ran ${o.source ? 'from src/ (type stripping: about 40 MB more RSS than deployed)' : 'as deployed (bin/agent-sidecar.js, built to dist/)'}${o.nodeFlags === 'none' ? ', without the V8 flags and MALLOC_ARENA_MAX of `run` (--node-flags none)' : ''}${o.cpuProfile ? '; with --cpu-prof, which adds CPU and RSS: read the profiles, not these figures' : ''}`,
        '',
        render(
          m,
          cmp,
          targets,
          {
            saturation: `Saturation: wrk -t${o.threads} -c${o.connections}, ${o.saturationSeconds}s per target${warm}; latency in µs`,
            rate: `Constant rate: vegeta ${o.rate} req/s, ${o.rateSeconds}s per target${warm}${o.rateWarmupSeconds > o.warmupSeconds ? ` (Node.js servers: ${o.rateWarmupSeconds}s at the rate first)` : ''}; latency in µs`,
            streams: `SSE streams: ${o.streams} concurrent streams of ${o.events} events, ${o.saturationSeconds}s per target${warm}`,
          },
          { telemetry: telemetryNote, peerTelemetry },
        ),
        '',
      ].join('\n'),
    );
    for (const w of warnings(m)) process.stdout.write(`WARNING: ${w}\n`);
    ok = true;
    return {
      scenario,
      targets: [...targets],
      startedAt,
      finishedAt: new Date().toISOString(),
      measurements: m,
      comparison: cmp,
      telemetry: telemetryNote,
      ...(peerTelemetry.length > 0 ? { peerTelemetry } : {}),
    };
  } finally {
    await stopAll();
    await f.auth?.close();
    await f.telemetry?.close();
    await f.agentgatewayTelemetry?.close();
    if (ok && !o.keepTmp) rmSync(tmp, { recursive: true, force: true });
    else log(`kept ${tmp} (configs and server logs)`);
  }
}

async function main(): Promise<void> {
  installCleanup();
  const parsed = parseOptions(process.argv.slice(2), process.env);
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const o = parsed;
  if (o.scenario !== 'all') {
    const missing = missingFeature(o.scenario);
    if (missing !== undefined) throw new Error(missing);
  }
  const wrk = requireTool('wrk', 'install it (Debian: apt-get install wrk)');
  requireTool('nginx', `install it (Debian: apt-get install nginx-light); expected at ${NGINX}`);
  const tools: Tools = { wrk, vegeta: await ensureGoTool(VEGETA, log) };
  const agentgateway = findAgentgateway();
  if (agentgateway.found) tools.agentgateway = agentgateway.path;
  else if (o.scenario === 'all' || o.targets.includes('agentgateway')) {
    log(`agentgateway left out: no executable at ${agentgateway.path} (set ${AGENTGATEWAY_ENV} to use another; bench/README.md says how to build it)`);
  }
  const cpus = cpuPlan(o);
  if (!o.source) {
    // The sidecar runs as deployed: compiled to dist/ and bundled (what `npm run build` and `npm ci`
    // do), started through bin/agent-sidecar.js. From src/, Node's type stripping costs about 40 MB of RSS.
    log(`building the sidecar: tsc -p tsconfig.build.json, then scripts/bundle.ts (--source runs src/ instead)`);
    await runChecked('tsc -p tsconfig.build.json', process.execPath, [TSC, '-p', BUILD_CONFIG], 300_000);
    await runChecked('scripts/bundle.ts', process.execPath, [BUNDLE_SCRIPT], 300_000);
  }
  const meta = await collectMeta({ nginx: NGINX, wrk, vegeta: tools.vegeta, agentgateway: tools.agentgateway });
  const startedAt = new Date().toISOString();
  const pinning = o.pin ? `load generator on CPU ${cpus.load}, servers on CPU ${cpus.servers}` : 'no CPU pinning';
  const { keepTmp: _k, ...options } = o;
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, 'latest.json');

  if (o.scenario !== 'all') {
    const run = await runScenario(o, o.scenario, o.targets, cpus, tools, meta, true);
    const { measurements, comparison, telemetry, peerTelemetry } = run;
    writeFileSync(
      file,
      `${JSON.stringify({ startedAt, finishedAt: new Date().toISOString(), meta, options: { ...options, targets: run.targets, pinning }, ...measurements, comparison, telemetry, peerTelemetry }, null, 2)}\n`,
    );
    log(`results written to ${file}`);
  } else {
    const runs: ScenarioRun[] = [];
    const skipped: Array<{ scenario: Scenario; reason: string }> = [];
    for (const scenario of ALL_SCENARIOS) {
      const missing = missingFeature(scenario);
      if (missing !== undefined) {
        log(`skipping ${missing}`);
        skipped.push({ scenario, reason: missing });
        continue;
      }
      // The soak, when asked for, runs once: on the full ingress chain.
      runs.push(await runScenario(o, scenario, DEFAULT_TARGETS[scenario], cpus, tools, meta, scenario === 'full'));
    }
    const table = performanceTable(runs, skipped, { meta, options: o, pinning });
    process.stdout.write(`\n${table}\n`);
    writeFileSync(join(RESULTS_DIR, 'performance.md'), `${table}\n`);
    writeFileSync(
      file,
      `${JSON.stringify({ startedAt, finishedAt: new Date().toISOString(), meta, options: { ...options, pinning }, runs, skipped }, null, 2)}\n`,
    );
    log(`results written to ${file} and ${join(RESULTS_DIR, 'performance.md')}`);
  }
  if (o.cpuProfile) log(`sidecar CPU profiles in ${join(RESULTS_DIR, 'profiles')} (open them in speedscope or Chrome DevTools: bench/README.md)`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
