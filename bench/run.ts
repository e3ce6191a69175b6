import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { AUTH_PATH, AUTH_ROLES, sidecarAuthConfig, startAuthFixture, type AuthFixture } from './lib/auth.ts';
import { collectMeta } from './lib/meta.ts';
import { parseOptions, USAGE, type BenchOptions, type TargetName } from './lib/options.ts';
import { installCleanup, stopAll, tail } from './lib/procs.ts';
import { compare, render, warnings, type Measurements, type TelemetryNote } from './lib/report.ts';
import {
  checkRefuses,
  checkServes,
  NGINX,
  startBareProxy,
  startNginxProxy,
  startSidecar,
  startUpstream,
  targetUrl,
  type RequestShape,
  type Server,
} from './lib/servers.ts';
import { treeCpuSeconds } from './lib/cpu.ts';
import { envWithoutOtel, sidecarTelemetryConfig, startTelemetryFixture, verifyTelemetry, type TelemetryFixture } from './lib/telemetry.ts';
import { ensureVegeta, requireTool } from './lib/tools.ts';
import { runVegeta, warmVegeta } from './lib/vegeta.ts';
import { runWrk, writeWrkScript } from './lib/wrk.ts';

/**
 * npm run bench: the same load direct to an upstream, through nginx, through a bare
 * node:http + undici proxy and through the sidecar (and, with --scenario auth, the sidecar
 * with JWT + RBAC); saturation with wrk, latency at a constant rate with vegeta.
 * See bench/README.md.
 */

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const POLICY_EXAMPLE = fileURLToPath(new URL('../config/policy.example.yaml', import.meta.url));
const PAUSE_MS = 500;

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

interface Cpus {
  load: string | undefined;
  servers: string | undefined;
}

function cpuPlan(o: BenchOptions): Cpus {
  if (!o.pin) return { load: undefined, servers: undefined };
  if (os.availableParallelism() < 2) throw new Error('--pin needs at least 2 CPUs');
  requireTool('taskset', 'install util-linux or run without --pin');
  return { load: '0', servers: '1' };
}

/** Every measured request: GET / without credentials, or with --scenario auth an analyst's bearer token on a policy route. */
function requestShape(auth: AuthFixture | undefined): RequestShape {
  return auth === undefined ? { path: '/', headers: {} } : { path: AUTH_PATH, headers: { authorization: `Bearer ${auth.token}` } };
}

async function startServers(
  o: BenchOptions,
  tmp: string,
  cpus: Cpus,
  auth: AuthFixture | undefined,
  telemetry: TelemetryFixture | undefined,
): Promise<Map<TargetName, Server>> {
  const servers = new Map<TargetName, Server>();
  const upstream = await startUpstream(tmp, cpus.servers);
  servers.set('direct', upstream);
  if (o.targets.includes('nginx')) servers.set('nginx', await startNginxProxy(tmp, upstream, cpus.servers));
  if (o.targets.includes('undici-proxy')) servers.set('undici-proxy', await startBareProxy(upstream, cpus.servers));
  const cpuProfileDir = o.cpuProfile ? join(RESULTS_DIR, 'profiles') : undefined;
  if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });
  // Sidecars without telemetry (on by default): OTEL_SDK_DISABLED=true, and no OTEL_* variable of this shell.
  const offEnv = envWithoutOtel({ OTEL_SDK_DISABLED: 'true' });
  if (o.targets.includes('sidecar')) {
    servers.set('sidecar', await startSidecar(tmp, upstream, { name: 'sidecar', cpus: cpus.servers, cpuProfileDir, env: offEnv }));
  }
  if (o.targets.includes('sidecar-auth')) {
    if (auth === undefined) throw new Error('sidecar-auth needs --scenario auth');
    const policyFile = join(tmp, 'policy.yaml');
    copyFileSync(POLICY_EXAMPLE, policyFile);
    const sidecarAuth = await startSidecar(tmp, upstream, {
      name: 'sidecar-auth',
      cpus: cpus.servers,
      cpuProfileDir,
      extraConfig: sidecarAuthConfig(auth, policyFile),
      env: offEnv,
      comment: 'Defaults except addresses and log level, plus JWT RS256 from the bench JWKS and the reference RBAC policy (a copy of config/policy.example.yaml).',
    });
    servers.set('sidecar-auth', sidecarAuth);
    // Auth must really be on: no token is refused, and a path outside the policy is denied.
    await checkRefuses(sidecarAuth, { path: AUTH_PATH, headers: {} }, 401, 'no bearer token');
    await checkRefuses(sidecarAuth, { ...requestShape(auth), path: '/not-in-the-policy' }, 403, `roles ${AUTH_ROLES.join(',')} on a path no route matches`);
  }
  if (o.targets.includes('sidecar-telemetry')) {
    if (telemetry === undefined) throw new Error('sidecar-telemetry needs --scenario telemetry');
    const logs = o.telemetrySignals.includes('logs');
    servers.set(
      'sidecar-telemetry',
      await startSidecar(tmp, upstream, {
        name: 'sidecar-telemetry',
        cpus: cpus.servers,
        cpuProfileDir,
        extraConfig: sidecarTelemetryConfig(telemetry.endpoint, o.telemetrySignals),
        // Access lines go to stdout at info: with logs, the level must let them through.
        logLevel: logs ? 'info' : 'warn',
        env: envWithoutOtel(),
        stdoutFile: telemetryStdout(tmp),
        comment: `Defaults except addresses and log level, plus telemetry (${o.telemetrySignals.join(', ')}) over OTLP gRPC to the bench's receiver.`,
      }),
    );
  }
  for (const s of servers.values()) await checkServes(s, requestShape(auth));
  if (telemetry !== undefined) {
    await verifyTelemetry(telemetry, servers.get('sidecar-telemetry'), servers.get('sidecar'), o.telemetrySignals, telemetryStdout(tmp), log);
  }
  return servers;
}

function telemetryStdout(tmp: string): string {
  return join(tmp, 'sidecar-telemetry-stdout.jsonl');
}

/** Around each measured phase of a target: what to record (the telemetry scenario's receiver counts and CPU). */
interface PhaseWatch {
  begin(target: TargetName, phase: 'saturation' | 'rate'): void;
  end(target: TargetName, phase: 'saturation' | 'rate', requests: number): void;
}

function telemetryWatch(fixture: TelemetryFixture, signals: readonly string[]): PhaseWatch & { note(): TelemetryNote } {
  const phases: TelemetryNote['phases'] = [];
  let start: { counts: ReturnType<TelemetryFixture['counts']>; cpu: NodeJS.CpuUsage; at: bigint } | undefined;
  return {
    begin(target) {
      if (target === 'sidecar-telemetry') start = { counts: fixture.counts(), cpu: process.cpuUsage(), at: process.hrtime.bigint() };
    },
    end(target, phase, requests) {
      if (target !== 'sidecar-telemetry' || start === undefined) return;
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

function assertAlive(servers: Map<TargetName, Server>): void {
  for (const s of servers.values()) {
    const p = s.child.proc;
    if (p.exitCode !== null || p.signalCode !== null) {
      throw new Error(`${s.name} exited (${p.exitCode ?? p.signalCode}) during the run:\n${tail(s.child.stderr() || s.child.stdout())}`);
    }
  }
}

async function measure(
  o: BenchOptions,
  tmp: string,
  cpus: Cpus,
  servers: Map<TargetName, Server>,
  tools: { wrk: string; vegeta: string },
  shape: RequestShape,
  watch?: PhaseWatch,
): Promise<Measurements> {
  const m: Measurements = { saturation: {}, rate: {}, cpuSeconds: { saturation: {}, rate: {} } };
  // The upstream's CPU is not a proxy's: `direct` gets no CPU figure.
  const cpuOf = (t: TargetName) => (t === 'direct' ? undefined : treeCpuSeconds(servers.get(t)!.child.proc.pid!));
  const script = writeWrkScript(tmp);
  const wrkOpts = { threads: o.threads, connections: o.connections, cpus: cpus.load, headers: shape.headers };
  for (const t of o.targets) {
    const url = targetUrl(servers.get(t)!, shape);
    if (o.warmupSeconds > 0) await runWrk(tools.wrk, script, url, { ...wrkOpts, seconds: o.warmupSeconds });
    await sleep(PAUSE_MS);
    log(`saturation: ${t} (wrk -t${o.threads} -c${o.connections}, ${o.saturationSeconds}s)`);
    watch?.begin(t, 'saturation');
    const cpuBefore = cpuOf(t);
    m.saturation[t] = await runWrk(tools.wrk, script, url, { ...wrkOpts, seconds: o.saturationSeconds });
    if (cpuBefore !== undefined) m.cpuSeconds.saturation[t] = cpuOf(t)! - cpuBefore;
    watch?.end(t, 'saturation', m.saturation[t].requests);
    assertAlive(servers);
    await sleep(PAUSE_MS);
  }
  for (const t of o.targets) {
    const url = targetUrl(servers.get(t)!, shape);
    const vegetaOpts = { rate: o.rate, cpus: cpus.load, dir: tmp, headers: shape.headers };
    if (o.warmupSeconds > 0) await warmVegeta(tools.vegeta, url, { ...vegetaOpts, seconds: o.warmupSeconds, name: `${t}-warmup` });
    await sleep(PAUSE_MS);
    log(`constant rate: ${t} (vegeta ${o.rate} req/s, ${o.rateSeconds}s)`);
    watch?.begin(t, 'rate');
    const cpuBefore = cpuOf(t);
    m.rate[t] = await runVegeta(tools.vegeta, url, { ...vegetaOpts, seconds: o.rateSeconds, name: t });
    if (cpuBefore !== undefined) m.cpuSeconds.rate[t] = cpuOf(t)! - cpuBefore;
    watch?.end(t, 'rate', m.rate[t].requests);
    assertAlive(servers);
    await sleep(PAUSE_MS);
  }
  return m;
}

async function main(): Promise<void> {
  installCleanup();
  const parsed = parseOptions(process.argv.slice(2), process.env);
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const o = parsed;
  const wrk = requireTool('wrk', 'install it (Debian: apt-get install wrk)');
  requireTool('nginx', `install it (Debian: apt-get install nginx-light); expected at ${NGINX}`);
  const vegeta = await ensureVegeta(log);
  const cpus = cpuPlan(o);
  const tmp = mkdtempSync(join(os.tmpdir(), 'agent-sidecar-bench-'));
  let ok = false;
  let auth: AuthFixture | undefined;
  let telemetry: TelemetryFixture | undefined;
  try {
    const meta = await collectMeta({ nginx: NGINX, wrk, vegeta });
    const startedAt = new Date().toISOString();
    log(`servers and configs in ${tmp}`);
    if (o.scenario === 'auth') {
      auth = await startAuthFixture();
      log(`scenario auth: JWKS at ${auth.jwksUrl}, RS256 token for roles ${AUTH_ROLES.join(',')}, every target gets GET ${AUTH_PATH} with it`);
    }
    if (o.scenario === 'telemetry') {
      telemetry = await startTelemetryFixture();
      log(
        `scenario telemetry: OTLP gRPC receiver at ${telemetry.endpoint}${telemetry.onDefaultPort ? ' (the default endpoint)' : ''}; sidecar-telemetry records ${o.telemetrySignals.join(', ')}`,
      );
    }
    const shape = requestShape(auth);
    const servers = await startServers(o, tmp, cpus, auth, telemetry);
    const watch = telemetry ? telemetryWatch(telemetry, o.telemetrySignals) : undefined;
    const m = await measure(o, tmp, cpus, servers, { wrk, vegeta }, shape, watch);
    await stopAll(); // before printing, so a --cpu-prof profile is written
    const telemetryNote = watch?.note();
    const cmp = compare(m);
    const pinning = o.pin ? `load generator on CPU ${cpus.load}, servers on CPU ${cpus.servers}` : 'no CPU pinning';
    const warm = o.warmupSeconds > 0 ? ` after ${o.warmupSeconds}s warm-up` : '';
    process.stdout.write(
      [
        '',
        `agent-sidecar benchmark  ${meta.gitCommit}  ${meta.cpus} CPUs (${meta.cpuModel}), ${pinning}`,
        `Scenario ${o.scenario}: every target gets GET ${shape.path}${auth ? ' with Authorization: Bearer <RS256 token, roles analyst>' : ''}${
          telemetry ? `; sidecar-telemetry records ${o.telemetrySignals.join(', ')} (OTLP gRPC to ${telemetry.endpoint}, metrics every 5s)` : ''
        }`,
        `Node ${meta.node}, ${meta.nginx}, ${meta.wrk}, vegeta ${meta.vegeta}; load average before the run ${meta.loadAverage.join(' ')}`,
        '',
        render(m, cmp, o.targets, {
          saturation: `Saturation: wrk -t${o.threads} -c${o.connections}, ${o.saturationSeconds}s per target${warm}; latency in µs`,
          rate: `Constant rate: vegeta ${o.rate} req/s, ${o.rateSeconds}s per target${warm}; latency in µs`,
        }, { telemetry: telemetryNote }),
        '',
      ].join('\n'),
    );
    for (const w of warnings(m)) process.stdout.write(`WARNING: ${w}\n`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, 'latest.json');
    const { keepTmp: _k, ...options } = o;
    writeFileSync(file, `${JSON.stringify({ startedAt, finishedAt: new Date().toISOString(), meta, options: { ...options, pinning }, ...m, comparison: cmp, telemetry: telemetryNote }, null, 2)}\n`);
    log(`results written to ${file}`);
    if (o.cpuProfile) log(`sidecar CPU profile in ${join(RESULTS_DIR, 'profiles')}`);
    ok = true;
  } finally {
    await stopAll();
    await auth?.close();
    await telemetry?.close();
    if (ok && !o.keepTmp) rmSync(tmp, { recursive: true, force: true });
    else log(`kept ${tmp} (configs and server logs)`);
  }
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
