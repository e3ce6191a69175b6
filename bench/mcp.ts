import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { Pool, type Dispatcher } from 'undici';
import { stringify } from 'yaml';
import { freePort, HOST, waitFor200 } from './lib/net.ts';
import { treeCpuNanos } from './lib/proc.ts';
import { installCleanup, startChild, stopAll, type Child } from './lib/procs.ts';
import { SIDECAR_SOURCE, startSidecar, type Server } from './lib/servers.ts';
import { percentile, ratio } from './lib/stats.ts';
import { envWithoutOtel, sidecarTelemetryConfig, startTelemetryFixture, type TelemetryCounts } from './lib/telemetry.ts';

/**
 * npm run bench:mcp: the latency one MCP tools/call gains through the sidecar. One MCP server
 * (the official SDK's McpServer + StreamableHTTPServerTransport, stateless, JSON answers, one
 * tool: bench/lib/mcp-server.ts) and, in the same run, alternating, the same pre-built JSON-RPC
 * tools/call sent to it:
 *
 * - `direct`: client → MCP server;
 * - `sidecar-passthrough`: client → sidecar, auth off (no policy, so no message is read) → server;
 * - `sidecar-mcp`: client → sidecar with JWT (HS256) and a policy whose route has an `mcp:`
 *   block authorizing the tool (a per-tool rule with an argument condition) → server;
 * - `sidecar-mcp-telemetry`: sidecar-mcp plus traces, metrics and logs over OTLP gRPC to a
 *   receiver inside this process.
 *
 * Two phases, each target in turn, the start of the order rotated every round: a closed loop
 * of --connections clients each sending its next call when the last has come back
 * (requests/s), and an open loop at --rate calls/s sent on schedule (latency without
 * coordinated omission). The client is undici's Pool.dispatch with a handler that keeps the
 * body, never the SDK's client, whose own cost would be measured with it. Prints figures and
 * never asserts them; exits 1 only when something breaks (a server cannot start, an answer is
 * not 200 with a JSON-RPC result, the sidecar does not enforce the policy, telemetry does not
 * arrive).
 */

const MCP_SERVER = fileURLToPath(new URL('./lib/mcp-server.ts', import.meta.url));
const SDK_PACKAGE = fileURLToPath(new URL('../node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
const SECRET = 'bench-mcp-secret-of-at-least-32-characters';
const PROTOCOL_VERSION = '2025-11-25';
const TOOL = 'search_documents';
const ROLE = 'searcher';

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    rate: { type: 'string', default: '500' },
    connections: { type: 'string', default: '8' },
    warmup: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'keep-tmp': { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    [
      'npm run bench:mcp -- [options]',
      '  --duration S      seconds each target is measured in each phase (default 10; 2 with --quick)',
      '  --rate N          calls per second of the constant-rate phase (default 500)',
      '  --connections N   concurrent clients of the closed loop (default 8)',
      '  --warmup S        unmeasured closed loop per target before measuring (default 5; 1 with --quick)',
      '  --rounds N        each phase split into N rounds of duration/N, targets alternating (default 2; 1 with --quick)',
      '  --quick           smoke run',
      '  --keep-tmp        keep configurations and logs',
      '  --cpu-prof        a V8 CPU profile of each sidecar in bench/results/profiles/ (its CPU figures then include the profiler)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const quick = values.quick;
const o = {
  durationS: Number(values.duration ?? (quick ? 2 : 10)),
  rate: Number(values.rate),
  connections: Number(values.connections),
  warmupS: Number(values.warmup ?? (quick ? 1 : 5)),
  rounds: Number(values.rounds ?? (quick ? 1 : 2)),
};
for (const [k, v] of Object.entries(o)) if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k.replace(/S$/, '')}: a positive number (not ${v})`);
o.rounds = Math.max(1, Math.round(o.rounds));
o.connections = Math.max(1, Math.round(o.connections));
/** Open-loop connections: enough that a stall shows as latency, not as calls that were never sent. */
const RATE_CONNECTIONS = 64;

const TARGETS = ['direct', 'sidecar-passthrough', 'sidecar-mcp', 'sidecar-mcp-telemetry'] as const;
type TargetName = (typeof TARGETS)[number];

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** The tools/call JSON-RPC request, serialized once. */
function callBody(id: number, collection = 'public'): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: TOOL, arguments: { collection, query: `quarterly report ${id}` } } });
}

/** The policy of sidecar-mcp: the tool allowed for one role, and only on two collections. */
const POLICY = {
  roles: { [ROLE]: ['use:mcp', 'call:search'] },
  routes: [
    {
      path: '/mcp',
      methods: { POST: 'use:mcp' },
      mcp: { default: 'deny', tools: { [TOOL]: [{ permission: 'call:search', arguments: { collection: ['public', 'research'] } }] } },
    },
  ],
};

interface Answer {
  status: number;
  body: Buffer;
}

const RESULT = Buffer.from('"result":');

/** One POST through undici's dispatch; the body kept whole (an answer is about 100 bytes). */
function call(pool: Pool, body: string, headers: Record<string, string>): Promise<Answer> {
  const options: Dispatcher.DispatchOptions = { path: '/mcp', method: 'POST', headers, body };
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let status = 0;
    pool.dispatch(options, {
      onRequestStart() {},
      onResponseStart(_c, statusCode) {
        status = statusCode;
      },
      onResponseData(_c, chunk: Buffer) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        resolve({ status, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
      },
      onResponseError(_c, err) {
        reject(err);
      },
    });
  });
}

interface Target {
  name: TargetName;
  origin: string;
  /** The process whose CPU is charged to the hop (the sidecar), or the MCP server for direct. */
  child: Child;
  closed: Pool;
  open: Pool;
}

interface Failures {
  count: number;
  first?: string;
}

/** Whether an answer is what every target must give: 200 and a JSON-RPC result. */
function failure(a: Answer): string | undefined {
  if (a.status === 200 && a.body.includes(RESULT)) return undefined;
  return `${a.status} ${a.body.toString('utf8').slice(0, 300)}`;
}

function fail(f: Failures, why: string): void {
  f.count++;
  f.first ??= why;
}

interface ClosedRun {
  requests: number;
  seconds: number;
  latencies: number[];
  failures: Failures;
}

/** --connections clients, each sending its next call when the last has come back, for ms. */
async function closedLoop(t: Target, ms: number, headers: Record<string, string>): Promise<ClosedRun> {
  const latencies: number[] = [];
  const failures: Failures = { count: 0 };
  const bodies = Array.from({ length: o.connections }, (_, i) => callBody(i + 1));
  const started = performance.now();
  const end = started + ms;
  const client = async (body: string) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        const a = await call(t.closed, body, headers);
        const why = failure(a);
        if (why === undefined) latencies.push(performance.now() - t0);
        else fail(failures, why);
      } catch (err) {
        fail(failures, (err as Error).message);
      }
    }
  };
  await Promise.all(bodies.map(client));
  return { requests: latencies.length, seconds: (performance.now() - started) / 1000, latencies, failures };
}

interface RateRun {
  sent: number;
  seconds: number;
  latencies: number[];
  /** How late calls left against their schedule, ms (the load generator's own lag). */
  lateness: number[];
  failures: Failures;
  /** CPU of the target's process over the run, ns. */
  cpuNs: number;
}

/**
 * --rate calls per second for ms, sent on schedule whether or not earlier ones have come back
 * (a timer every millisecond sends what is due). Latency runs from when a call was handed to
 * the pool, so the timer's own granularity is not charged to the targets; how late calls
 * left is kept apart.
 */
async function constantRate(t: Target, ms: number, headers: Record<string, string>, bodies: readonly string[]): Promise<RateRun> {
  const latencies: number[] = [];
  const lateness: number[] = [];
  const failures: Failures = { count: 0 };
  const pending: Array<Promise<void>> = [];
  const total = Math.floor((o.rate * ms) / 1000);
  const one = async (body: string) => {
    const t0 = performance.now();
    try {
      const a = await call(t.open, body, headers);
      const why = failure(a);
      if (why === undefined) latencies.push(performance.now() - t0);
      else fail(failures, why);
    } catch (err) {
      fail(failures, (err as Error).message);
    }
  };
  const cpuBefore = treeCpuNanos(t.child.proc.pid!);
  const started = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - started) * o.rate) / 1000));
      for (; sent < due; sent++) {
        lateness.push(now - (started + (sent * 1000) / o.rate));
        pending.push(one(bodies[sent % bodies.length]!));
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  const cpuNs = treeCpuNanos(t.child.proc.pid!) - cpuBefore;
  return { sent, seconds: (performance.now() - started) / 1000, latencies, lateness, failures, cpuNs };
}

/** The order of round r: the targets rotated by r, so none is always measured first or last. */
function order(r: number): TargetName[] {
  return TARGETS.map((_, i) => TARGETS[(i + r) % TARGETS.length]!);
}

function parseAnswer(a: Answer): { result?: { content?: Array<{ text?: string }> }; error?: { code: number; data?: { code?: string } } } | undefined {
  try {
    return JSON.parse(a.body.toString('utf8')) as ReturnType<typeof parseAnswer>;
  } catch {
    return undefined;
  }
}

/**
 * Before any figure: every target answers the measured call with the tool's result; the
 * policy really is enforced by the sidecar-mcp targets (no token: 401; a collection the
 * condition does not allow: a JSON-RPC refusal, with the code in error.data) and not by
 * sidecar-passthrough (which reads no message).
 */
async function check(targets: Map<TargetName, Target>, headers: Record<string, string>): Promise<void> {
  const expected = '3 documents in public match quarterly report 1';
  for (const t of targets.values()) {
    const a = await call(t.closed, callBody(1), headers);
    const json = parseAnswer(a);
    const text = json?.result?.content?.[0]?.text;
    if (a.status !== 200 || text !== expected)
      throw new Error(`${t.name}: the first tools/call answered ${a.status} ${a.body.toString('utf8').slice(0, 300)}, expected 200 with "${expected}"`);
    const secret = parseAnswer(await call(t.closed, callBody(2, 'secret'), headers));
    const refused = secret?.error?.data?.code;
    if (t.name.startsWith('sidecar-mcp')) {
      if (refused !== 'SIDECAR_ARGUMENTS_FORBIDDEN') throw new Error(`${t.name}: a call on collection secret was not refused: ${JSON.stringify(secret)}`);
      const { authorization: _, ...anonymous } = headers;
      const noToken = await call(t.closed, callBody(3), anonymous);
      if (noToken.status !== 401) throw new Error(`${t.name}: a call without a token answered ${noToken.status}, expected 401`);
    } else if (secret?.result === undefined) {
      throw new Error(`${t.name}: a call on collection secret should pass untouched: ${JSON.stringify(secret)}`);
    }
  }
  log('checked: every target answers the tool call; the sidecar-mcp targets refuse a call without a token (401) and one on a collection outside the condition');
}

/** Waits until sidecar-mcp-telemetry's spans, metric points and log records have all reached the receiver. */
async function telemetryArrived(counts: () => TelemetryCounts, requests: number): Promise<TelemetryCounts> {
  const until = Date.now() + 15_000;
  let c = counts();
  while (Date.now() < until && (c.spans < requests || c.logRecords < requests || c.metricPoints === 0)) {
    await new Promise((r) => setTimeout(r, 250));
    c = counts();
  }
  if (c.spans < requests || c.logRecords < requests || c.metricPoints === 0)
    throw new Error(`sidecar-mcp-telemetry exported ${c.spans} spans, ${c.logRecords} log records, ${c.metricPoints} metric points for ${requests} calls`);
  return c;
}

// ---------------------------------------------------------------------------------------
// Figures

const fmt = (ms: number) => (Number.isFinite(ms) ? (Math.abs(ms) < 10 ? ms.toFixed(2) : ms.toFixed(1)) : 'n/a');
const signed = (ms: number) => (Number.isFinite(ms) ? `${ms >= 0 ? '+' : ''}${fmt(ms)}` : 'n/a');
const x = (r: number | undefined) => (r === undefined ? 'n/a' : `${r.toFixed(2)}x`);
const sorted = (xs: number[]) => Float64Array.from(xs).sort();

interface Figures {
  closed: { requests: number; seconds: number; rps: number; p50: number; p99: number; max: number };
  rate: { sent: number; ok: number; seconds: number; achieved: number; p50: number; p99: number; max: number; lateP99: number; cpuUsPerCall: number };
}

function figures(closed: ClosedRun[], rate: RateRun[]): Figures {
  const cl = sorted(closed.flatMap((r) => r.latencies));
  const requests = closed.reduce((a, r) => a + r.requests, 0);
  const seconds = closed.reduce((a, r) => a + r.seconds, 0);
  const rl = sorted(rate.flatMap((r) => r.latencies));
  const sent = rate.reduce((a, r) => a + r.sent, 0);
  const rs = rate.reduce((a, r) => a + r.seconds, 0);
  const cpu = rate.reduce((a, r) => a + r.cpuNs, 0);
  return {
    closed: { requests, seconds, rps: requests / seconds, p50: percentile(cl, 50), p99: percentile(cl, 99), max: cl.at(-1) ?? Number.NaN },
    rate: {
      sent,
      ok: rl.length,
      seconds: rs,
      achieved: rl.length / rs,
      p50: percentile(rl, 50),
      p99: percentile(rl, 99),
      max: rl.at(-1) ?? Number.NaN,
      lateP99: percentile(sorted(rate.flatMap((r) => r.lateness)), 99),
      cpuUsPerCall: cpu / 1e3 / sent,
    },
  };
}

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
}

function table(f: Record<TargetName, Figures>): string[] {
  const w = [22, 9, 8, 8, 8, 9, 8, 8, 8, 11];
  const lines = [
    pad(['', 'closed', '', '', '', `${o.rate}/s`, '', '', '', 'CPU µs'], w),
    pad(['target', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'ok/sent', 'p50 ms', 'p99 ms', 'max ms', 'per call'], w),
  ];
  for (const t of TARGETS) {
    const { closed: c, rate: r } = f[t];
    lines.push(
      pad([t, c.rps.toFixed(0), fmt(c.p50), fmt(c.p99), fmt(c.max), `${r.ok}/${r.sent}`, fmt(r.p50), fmt(r.p99), fmt(r.max), r.cpuUsPerCall.toFixed(0)], w),
    );
  }
  return lines;
}

/** `a` against `base`: closed-loop req/s ratio and added p50/p99, constant-rate added p50/p99 and the p99 ratio. */
function against(a: TargetName, base: TargetName, f: Record<TargetName, Figures>): string {
  const [fa, fb] = [f[a], f[base]];
  return (
    `  ${a.padEnd(22)} vs ${base.padEnd(20)} req/s ${x(ratio(fa.closed.rps, fb.closed.rps)).padStart(6)}` +
    `  closed p50 ${signed(fa.closed.p50 - fb.closed.p50).padStart(6)} ms, p99 ${signed(fa.closed.p99 - fb.closed.p99).padStart(6)} ms` +
    `  at ${o.rate}/s p50 ${signed(fa.rate.p50 - fb.rate.p50).padStart(6)} ms (${x(ratio(fa.rate.p50, fb.rate.p50))}), p99 ${signed(fa.rate.p99 - fb.rate.p99).padStart(6)} ms (${x(ratio(fa.rate.p99, fb.rate.p99))})` +
    // Direct's CPU is the MCP server's: a sidecar's own is in the table, a difference would mean nothing.
    (base === 'direct' ? '' : `  sidecar CPU ${signed(fa.rate.cpuUsPerCall - fb.rate.cpuUsPerCall)} µs/call`)
  );
}

// ---------------------------------------------------------------------------------------

installCleanup();
const loadBefore = os
  .loadavg()
  .map((l) => l.toFixed(2))
  .join(' ');
const tmp = mkdtempSync(join(os.tmpdir(), 'agent-sidecar-bench-mcp-'));
let ok = false;
const pools: Pool[] = [];
const telemetry = await startTelemetryFixture();
try {
  const serverPort = await freePort();
  const mcpServer = startChild('mcp-server', process.execPath, [MCP_SERVER, `${HOST}:${serverPort}`]);
  const serverUrl = `http://${HOST}:${serverPort}/`;
  await waitFor200(`${serverUrl}healthz`, mcpServer);
  const upstream: Server = { name: 'mcp-server', url: serverUrl, child: mcpServer };

  const policyFile = join(tmp, 'policy.yaml');
  writeFileSync(policyFile, stringify(POLICY));
  const mcpConfig = `auth:\n  jwt:\n    secret: ${SECRET}\npolicy:\n  file: ${policyFile}\n`;
  const cpuProfileDir = values['cpu-prof'] ? join(RESULTS, 'profiles') : undefined;
  if (cpuProfileDir !== undefined) mkdirSync(cpuProfileDir, { recursive: true });
  const common = { cpus: undefined, entry: SIDECAR_SOURCE, cpuProfileDir } as const;
  const off = envWithoutOtel({ OTEL_SDK_DISABLED: 'true' });
  const sidecars: Record<Exclude<TargetName, 'direct'>, Server> = {
    'sidecar-passthrough': await startSidecar(tmp, upstream, { ...common, name: 'sidecar-passthrough', env: off }),
    'sidecar-mcp': await startSidecar(tmp, upstream, {
      ...common,
      name: 'sidecar-mcp',
      env: off,
      comment: 'JWT HS256 and a policy whose /mcp route authorizes tools/call per tool and argument; no telemetry.',
      extraConfig: mcpConfig,
    }),
    'sidecar-mcp-telemetry': await startSidecar(tmp, upstream, {
      ...common,
      name: 'sidecar-mcp-telemetry',
      env: envWithoutOtel(),
      stdoutFile: join(tmp, 'sidecar-mcp-telemetry-stdout.jsonl'),
      comment: 'sidecar-mcp plus traces, metrics and logs over OTLP to the bench receiver.',
      extraConfig: mcpConfig + sidecarTelemetryConfig(telemetry.endpoint, ['traces', 'metrics', 'logs']),
    }),
  };
  const targets = new Map<TargetName, Target>();
  for (const name of TARGETS) {
    const server = name === 'direct' ? upstream : sidecars[name];
    const origin = new URL(server.url).origin;
    const closed = new Pool(origin, { connections: o.connections });
    const open = new Pool(origin, { connections: RATE_CONNECTIONS });
    pools.push(closed, open);
    targets.set(name, { name, origin, child: server.child, closed, open });
  }

  const token = await new SignJWT({ roles: [ROLE] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('bench-caller')
    .setExpirationTime('24h')
    .sign(new TextEncoder().encode(SECRET));
  // The same headers for every target: the server and sidecar-passthrough ignore the token.
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': PROTOCOL_VERSION,
    authorization: `Bearer ${token}`,
  };
  await check(targets, headers);

  const rateBodies = Array.from({ length: 256 }, (_, i) => callBody(i + 1));
  const sliceMs = (o.durationS * 1000) / o.rounds;
  const closedRuns = new Map<TargetName, ClosedRun[]>(TARGETS.map((t) => [t, []]));
  const rateRuns = new Map<TargetName, RateRun[]>(TARGETS.map((t) => [t, []]));
  const broken = (name: TargetName, phase: string, f: Failures) => {
    if (f.count > 0) throw new Error(`${name}, ${phase}: ${f.count} call(s) failed; the first: ${f.first}`);
  };
  log(
    `warm-up: ${o.warmupS} s closed loop per target; then ${o.durationS} s per target and phase in ${o.rounds} round(s), ${o.connections} connections, then ${o.rate} calls/s`,
  );
  for (const name of TARGETS) broken(name, 'warm-up', (await closedLoop(targets.get(name)!, o.warmupS * 1000, headers)).failures);
  for (let r = 0; r < o.rounds; r++) {
    for (const name of order(r)) {
      const run = await closedLoop(targets.get(name)!, sliceMs, headers);
      broken(name, 'closed loop', run.failures);
      closedRuns.get(name)!.push(run);
      log(`closed loop, round ${r + 1}: ${name} ${(run.requests / run.seconds).toFixed(0)} req/s`);
    }
  }
  for (let r = 0; r < o.rounds; r++) {
    for (const name of order(r)) {
      const run = await constantRate(targets.get(name)!, sliceMs, headers, rateBodies);
      broken(name, 'constant rate', run.failures);
      rateRuns.get(name)!.push(run);
      log(`constant rate, round ${r + 1}: ${name} p50 ${fmt(percentile(sorted(run.latencies), 50))} ms, p99 ${fmt(percentile(sorted(run.latencies), 99))} ms`);
    }
  }
  for (const t of TARGETS) if (targets.get(t)!.child.proc.exitCode !== null) throw new Error(`${t}'s process exited during the run`);

  const f = Object.fromEntries(TARGETS.map((t) => [t, figures(closedRuns.get(t)!, rateRuns.get(t)!)])) as Record<TargetName, Figures>;
  const exported = f['sidecar-mcp-telemetry'];
  const counts = await telemetryArrived(() => telemetry.counts(), exported.closed.requests + exported.rate.ok);
  const sdk = (JSON.parse(readFileSync(SDK_PACKAGE, 'utf8')) as { version: string }).version;
  const lateP99 = Math.max(...TARGETS.map((t) => f[t].rate.lateP99));

  const out = [
    `Machine: ${os.cpus().length} CPUs, Node ${process.version}, load average before ${loadBefore}; MCP SDK ${sdk}, protocol ${PROTOCOL_VERSION}`,
    `One tools/call (${callBody(1).length} bytes, answer about 100) per request, stateless JSON server; sidecars from source, log.level warn.`,
    `Closed loop: ${o.connections} connections, ${o.durationS} s per target after ${o.warmupS} s warm-up; constant rate: ${o.rate} calls/s for ${o.durationS} s per target; ${o.rounds} round(s), targets alternating.`,
    `CPU µs per call: the target's own process (the MCP server for direct, the sidecar otherwise) at the constant rate.`,
    '',
    ...table(f),
    '',
    'Against direct (what the hop adds):',
    ...TARGETS.slice(1).map((t) => against(t, 'direct', f)),
    'Against sidecar-passthrough (reading and authorizing the message, then telemetry):',
    against('sidecar-mcp', 'sidecar-passthrough', f),
    against('sidecar-mcp-telemetry', 'sidecar-passthrough', f),
    'Telemetry alone:',
    against('sidecar-mcp-telemetry', 'sidecar-mcp', f),
    '',
    `The OTLP receiver got ${counts.spans} spans, ${counts.logRecords} log records and ${counts.metricPoints} metric points from sidecar-mcp-telemetry` +
      (counts.foreign > 0
        ? ` and ${counts.foreign} item(s) from another exporter${telemetry.onDefaultPort ? ' (it listens on the default port 4317, where any process on this machine may export)' : ''}. `
        : '. ') +
      `Calls left their schedule up to ${fmt(lateP99)} ms late at p99 (the load generator's timer).`,
    '',
  ];
  process.stdout.write(out.join('\n'));
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'mcp-latest.json'), `${JSON.stringify({ options: o, loadBefore, sdk, figures: f, telemetry: counts }, null, 2)}\n`);
  ok = true;
} finally {
  await Promise.all(pools.map((p) => p.close().catch(() => {})));
  await stopAll();
  await telemetry.close();
  if (ok && !values['keep-tmp']) rmSync(tmp, { recursive: true, force: true });
  else log(`configurations and logs kept in ${tmp}`);
}
