import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { collectMeta } from './lib/meta.ts';
import { parseOptions, USAGE, type BenchOptions, type TargetName } from './lib/options.ts';
import { installCleanup, stopAll, tail } from './lib/procs.ts';
import { compare, render, warnings, type Measurements } from './lib/report.ts';
import { checkServes, NGINX, startNginxProxy, startSidecar, startUpstream, type Server } from './lib/servers.ts';
import { ensureVegeta, requireTool } from './lib/tools.ts';
import { runVegeta, warmVegeta } from './lib/vegeta.ts';
import { runWrk, writeWrkScript } from './lib/wrk.ts';

/**
 * npm run bench: the same load direct to an upstream, through nginx and through the
 * sidecar; saturation with wrk, latency at a constant rate with vegeta. See bench/README.md.
 */

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
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

async function startServers(o: BenchOptions, tmp: string, cpus: Cpus): Promise<Map<TargetName, Server>> {
  const servers = new Map<TargetName, Server>();
  const upstream = await startUpstream(tmp, cpus.servers);
  servers.set('direct', upstream);
  if (o.targets.includes('nginx')) servers.set('nginx', await startNginxProxy(tmp, upstream, cpus.servers));
  if (o.targets.includes('sidecar')) {
    const cpuProfileDir = o.cpuProfile ? join(RESULTS_DIR, 'profiles') : undefined;
    if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });
    servers.set('sidecar', await startSidecar(tmp, upstream, { cpus: cpus.servers, cpuProfileDir }));
  }
  for (const s of servers.values()) await checkServes(s);
  return servers;
}

function assertAlive(servers: Map<TargetName, Server>): void {
  for (const s of servers.values()) {
    const p = s.child.proc;
    if (p.exitCode !== null || p.signalCode !== null) {
      throw new Error(`${s.name} exited (${p.exitCode ?? p.signalCode}) during the run:\n${tail(s.child.stderr() || s.child.stdout())}`);
    }
  }
}

async function measure(o: BenchOptions, tmp: string, cpus: Cpus, servers: Map<TargetName, Server>, tools: { wrk: string; vegeta: string }): Promise<Measurements> {
  const m: Measurements = { saturation: {}, rate: {} };
  const script = writeWrkScript(tmp);
  const wrkOpts = { threads: o.threads, connections: o.connections, cpus: cpus.load };
  for (const t of o.targets) {
    const url = servers.get(t)!.url;
    if (o.warmupSeconds > 0) await runWrk(tools.wrk, script, url, { ...wrkOpts, seconds: o.warmupSeconds });
    await sleep(PAUSE_MS);
    log(`saturation: ${t} (wrk -t${o.threads} -c${o.connections}, ${o.saturationSeconds}s)`);
    m.saturation[t] = await runWrk(tools.wrk, script, url, { ...wrkOpts, seconds: o.saturationSeconds });
    assertAlive(servers);
    await sleep(PAUSE_MS);
  }
  for (const t of o.targets) {
    const url = servers.get(t)!.url;
    const vegetaOpts = { rate: o.rate, cpus: cpus.load, dir: tmp };
    if (o.warmupSeconds > 0) await warmVegeta(tools.vegeta, url, { ...vegetaOpts, seconds: o.warmupSeconds, name: `${t}-warmup` });
    await sleep(PAUSE_MS);
    log(`constant rate: ${t} (vegeta ${o.rate} req/s, ${o.rateSeconds}s)`);
    m.rate[t] = await runVegeta(tools.vegeta, url, { ...vegetaOpts, seconds: o.rateSeconds, name: t });
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
  try {
    const meta = await collectMeta({ nginx: NGINX, wrk, vegeta });
    const startedAt = new Date().toISOString();
    log(`servers and configs in ${tmp}`);
    const servers = await startServers(o, tmp, cpus);
    const m = await measure(o, tmp, cpus, servers, { wrk, vegeta });
    await stopAll(); // before printing, so a --cpu-prof profile is written
    const cmp = compare(m);
    const pinning = o.pin ? `load generator on CPU ${cpus.load}, servers on CPU ${cpus.servers}` : 'no CPU pinning';
    const warm = o.warmupSeconds > 0 ? ` after ${o.warmupSeconds}s warm-up` : '';
    process.stdout.write(
      [
        '',
        `agent-sidecar benchmark  ${meta.gitCommit}  ${meta.cpus} CPUs (${meta.cpuModel}), ${pinning}`,
        `Node ${meta.node}, ${meta.nginx}, ${meta.wrk}, vegeta ${meta.vegeta}; load average before the run ${meta.loadAverage.join(' ')}`,
        '',
        render(m, cmp, o.targets, {
          saturation: `Saturation: wrk -t${o.threads} -c${o.connections}, ${o.saturationSeconds}s per target${warm}; latency in µs`,
          rate: `Constant rate: vegeta ${o.rate} req/s, ${o.rateSeconds}s per target${warm}; latency in µs`,
        }),
        '',
      ].join('\n'),
    );
    for (const w of warnings(m)) process.stdout.write(`WARNING: ${w}\n`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, 'latest.json');
    const { keepTmp: _k, ...options } = o;
    writeFileSync(file, `${JSON.stringify({ startedAt, finishedAt: new Date().toISOString(), meta, options: { ...options, pinning }, ...m, comparison: cmp }, null, 2)}\n`);
    log(`results written to ${file}`);
    if (o.cpuProfile) log(`sidecar CPU profile in ${join(RESULTS_DIR, 'profiles')}`);
    ok = true;
  } finally {
    await stopAll();
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
