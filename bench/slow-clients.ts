import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { RawHttpClient } from './lib/http-reader.ts';
import { freePort, get, HOST, waitFor200 } from './lib/net.ts';
import { installCleanup, startChild, stopAll, stopChild } from './lib/procs.ts';
import { SIDECAR_ENV, SIDECAR_V8_FLAGS } from './lib/servers.ts';
import { percentile, ratio } from './lib/stats.ts';
import type { TrickleKind, TricklerOptions, TrickleResult } from './lib/tricklers.ts';

/**
 * npm run bench:slow-clients: ordinary GETs through the sidecar, measured alone and then while
 * N slow clients (1000 by default) keep connections open, in the same run, against the same
 * upstream and sidecar:
 *
 * - `bodies`: POST heads whose body then trickles one byte at a time, slower than
 *   limits.clientBodyTimeout: a quarter declare a length under limits.bufferBodyBytes
 *   (1000 bytes), a quarter over it (100000 bytes), a quarter are chunked, and a quarter
 *   send 70 kB at once (past the buffer: their body streams and takes an upstream
 *   connection, within upstream.streamedBodyShare) before they trickle;
 * - `slowloris`: request heads sent one byte at a time, never finished, against
 *   limits.clientHeadersTimeout.
 *
 * Each slow client reconnects once answered, so N of them are in flight for the whole phase.
 * Prints the p50/p99 of the ordinary GETs in each phase and their ratio to the baseline, the
 * GETs that failed, and when the slow clients got their 408 against the configured timeout
 * (bodies: from their last byte; slowloris: from their first). Loopback only; about
 * 3 x --duration plus the timeouts.
 */

const SIDECAR_CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const UPSTREAM = fileURLToPath(new URL('./lib/ok-upstream.ts', import.meta.url));
const TRICKLERS = fileURLToPath(new URL('./lib/tricklers.ts', import.meta.url));

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    timeout: { type: 'string', default: '5' },
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    phases: { type: 'string', default: 'bodies,slowloris' },
    kinds: { type: 'string', default: 'declared-short,declared-long,chunked,streaming' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    [
      'npm run bench:slow-clients -- [options]',
      '  --clients N       slow clients in flight during a phase (default 1000)',
      '  --timeout S       limits.clientBodyTimeout and clientHeadersTimeout, seconds (default 5)',
      '  --duration S      seconds each phase measures ordinary GETs (default 10)',
      '  --rate N          ordinary GETs per second, sent on schedule (default 1000)',
      '  --phases LIST     bodies, slowloris (default both)',
      '  --kinds LIST      the slow bodies: declared-short, declared-long, chunked, streaming (default all four)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const clients = Number(values.clients);
const timeoutMs = Number(values.timeout) * 1000;
const durationMs = Number(values.duration) * 1000;
const rate = Number(values.rate);
const phases = values.phases.split(',').map((p) => p.trim()) as Array<'bodies' | 'slowloris'>;
for (const p of phases) if (p !== 'bodies' && p !== 'slowloris') throw new Error(`--phases: bodies, slowloris (not ${p})`);
const BODY_KINDS: readonly TrickleKind[] = ['declared-short', 'declared-long', 'chunked', 'streaming'];
const bodyKinds = values.kinds.split(',').map((k) => k.trim()) as TrickleKind[];
for (const k of bodyKinds) if (!BODY_KINDS.includes(k)) throw new Error(`--kinds: ${BODY_KINDS.join(', ')} (not ${k})`);

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** The soft limit on open files: each slow client is a socket here and one in the sidecar. */
function openFilesLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  return Number(line?.split(/\s{2,}/)[1] ?? Number.NaN);
}

interface Latencies {
  /** Every ordinary GET's latency, ms, ascending. */
  ms: Float64Array;
  failed: number;
  seconds: number;
}

/**
 * GET / at a constant `rate` per second for `ms` (open loop: requests leave on schedule,
 * within a millisecond, whether or not earlier ones have returned, so a stalled proxy shows
 * as latency and failures instead of fewer requests). Keep-alive connections are reused when
 * idle, opened when none is.
 */
async function measureGets(port: number, ms: number): Promise<Latencies> {
  const request = Buffer.from(`GET / HTTP/1.1\r\nhost: ${HOST}:${port}\r\n\r\n`, 'latin1');
  const idle: RawHttpClient[] = [];
  const all: RawHttpClient[] = [];
  const samples: number[] = [];
  let failed = 0;
  const pending: Array<Promise<void>> = [];
  const one = async () => {
    let client = idle.pop();
    if (client === undefined) all.push((client = new RawHttpClient(HOST, port)));
    const sentAt = performance.now();
    try {
      const r = await Promise.race([
        client.send(request),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 10 s')), 10_000).unref()),
      ]);
      if (r.status === 200) samples.push(performance.now() - sentAt);
      else failed++;
      idle.push(client);
    } catch {
      failed++;
      client.close();
    }
  };
  const started = performance.now();
  let sent = 0;
  const total = Math.floor((rate * ms) / 1000);
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - started) * rate) / 1000));
      for (; sent < due; sent++) pending.push(one());
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  for (const c of all) c.close();
  return { ms: Float64Array.from(samples).sort(), failed, seconds: (performance.now() - started) / 1000 };
}

const fmt = (ms: number) => (Number.isFinite(ms) ? (ms < 10 ? ms.toFixed(2) : ms.toFixed(0)) : 'n/a');
const x = (r: number | undefined) => (r === undefined ? 'n/a' : `${r.toFixed(2)}x`);

function latencyLine(name: string, l: Latencies, base: Latencies | undefined): string {
  const p50 = percentile(l.ms, 50);
  const p99 = percentile(l.ms, 99);
  const vs = base === undefined ? '' : `  p50 ${x(ratio(p50, percentile(base.ms, 50)))}, p99 ${x(ratio(p99, percentile(base.ms, 99)))} of baseline`;
  return `${name.padEnd(34)} ${String(l.ms.length).padStart(6)} ok ${String(l.failed).padStart(5)} failed  p50 ${fmt(p50).padStart(5)} ms  p99 ${fmt(p99).padStart(5)} ms  p99.9 ${fmt(percentile(l.ms, 99.9)).padStart(5)} ms  max ${fmt(l.ms.at(-1) ?? Number.NaN).padStart(5)} ms${vs}`;
}

function answersLine(kind: string, results: TrickleResult[], limitMs: number, measure: (r: TrickleResult) => number): string {
  const mine = results.filter((r) => r.kind === kind);
  const timedOut = mine.filter((r) => r.status === 408 && r.code === 'SIDECAR_REQUEST_TIMEOUT');
  const waits = Float64Array.from(timedOut.map(measure)).sort();
  const others = new Map<string, number>();
  for (const r of mine) {
    if (r.status === 408 && r.code === 'SIDECAR_REQUEST_TIMEOUT') continue;
    const key = r.status === -1 ? 'unanswered' : r.status === 0 ? 'closed unanswered' : `${r.status} ${r.code ?? ''}`.trim();
    others.set(key, (others.get(key) ?? 0) + 1);
  }
  const other = [...others].map(([s, n]) => `${n} x ${s}`).join(', ') || 'none other';
  return `  ${kind.padEnd(16)} ${String(timedOut.length).padStart(6)} x 408 (${other}); after ${fmt(percentile(waits, 50))} ms p50, ${fmt(percentile(waits, 99))} ms p99, ${fmt(waits.at(-1) ?? Number.NaN)} ms max; limit ${limitMs} ms, late by ${fmt((waits.at(-1) ?? Number.NaN) - limitMs)} ms at most`;
}

installCleanup();
const limit = openFilesLimit();
if (limit < clients * 2 + 1000)
  throw new Error(`ulimit -n is ${limit}: ${clients} slow clients need about ${clients * 2 + 1000} open files (a socket here and one in the sidecar each)`);
const tmp = mkdtempSync(join(os.tmpdir(), 'agent-sidecar-bench-slow-'));
try {
  const [upstreamPort, listenPort, adminPort, egressPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const upstream = startChild('upstream', process.execPath, [UPSTREAM, `${HOST}:${upstreamPort}`]);
  await waitFor200(`http://${HOST}:${upstreamPort}/stats`, upstream);
  const config = join(tmp, 'sidecar.yaml');
  const seconds = `${timeoutMs}ms`;
  writeFileSync(
    config,
    [
      `listen: { address: "${HOST}:${listenPort}" }`,
      // The defaults otherwise: 128 upstream connections, 64 KiB buffered bodies, half the pool for streamed ones.
      `upstream: { url: "http://${HOST}:${upstreamPort}" }`,
      `limits: { clientBodyTimeout: ${seconds}, clientHeadersTimeout: ${seconds} }`,
      `admin: { address: "${HOST}:${adminPort}" }`,
      `egress: { address: "${HOST}:${egressPort}" }`,
      'log: { level: warn }',
    ].join('\n'),
  );
  const env = { ...SIDECAR_ENV, OTEL_SDK_DISABLED: 'true', ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_'))) };
  // BENCH_CPU_PROF=DIR: a CPU profile of the sidecar, written when it stops.
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const sidecar = startChild('sidecar', process.execPath, [...SIDECAR_V8_FLAGS, ...prof, SIDECAR_CLI, 'run', '--config', config], { env });
  await waitFor200(`http://${HOST}:${adminPort}/readyz`, sidecar);
  log(`sidecar ready; ${clients} slow clients per phase, timeouts ${timeoutMs} ms, GETs at ${rate}/s, ${durationMs / 1000} s per phase; ulimit -n ${limit}`);

  await measureGets(listenPort, 3000); // warm-up
  const baseline = await measureGets(listenPort, durationMs);
  log(latencyLine('baseline', baseline, undefined));
  const lines = [latencyLine('ordinary GETs, alone', baseline, undefined)];
  const answers: string[] = [];

  for (const phase of phases) {
    const kinds: TrickleKind[] = phase === 'bodies' ? bodyKinds : ['slowloris'];
    // Bodies: a byte after 1.5 timeouts, so each times out idle; slowloris: a byte every 500 ms, never idle.
    const everyMs = phase === 'bodies' ? Math.round(timeoutMs * 1.5) : 500;
    const rampMs = 2000;
    const o: TricklerOptions = { host: HOST, port: listenPort, clients, kinds, everyMs, durationMs: rampMs + durationMs, rampMs, giveUpMs: timeoutMs * 4 };
    const out = join(tmp, `${phase}.json`);
    const tricklers = startChild(`tricklers-${phase}`, process.execPath, [TRICKLERS, JSON.stringify(o)], { stdoutFile: out });
    await new Promise((r) => setTimeout(r, rampMs));
    const under = await measureGets(listenPort, durationMs);
    log(latencyLine(`with ${clients} ${phase}`, under, baseline));
    lines.push(latencyLine(`ordinary GETs, ${clients} ${phase}`, under, baseline));
    const code = await tricklers.exited;
    if (code !== 0) throw new Error(`the slow clients exited with ${code}: ${tricklers.stderr()}`);
    const results = JSON.parse(readFileSync(out, 'utf8')) as TrickleResult[];
    for (const kind of kinds) {
      answers.push(
        phase === 'bodies' ? answersLine(kind, results, timeoutMs, (r) => r.sinceLastByteMs) : answersLine(kind, results, timeoutMs, (r) => r.sinceStartMs),
      );
    }
  }
  const stats = JSON.parse((await get(`http://${HOST}:${upstreamPort}/stats`)).body) as { requests: number; withBody: number; aborted: number };
  await stopChild(sidecar);

  process.stdout.write(
    [
      `Machine: ${os.cpus().length} CPUs, Node ${process.version}, load average before ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
      `Sidecar defaults but limits.clientBodyTimeout = limits.clientHeadersTimeout = ${timeoutMs} ms; GET / at ${rate} req/s on schedule; ${clients} slow clients in flight, each reconnecting once answered.`,
      '',
      ...lines,
      '',
      'Slow clients answered (bodies: time from their last byte; slowloris: from their first):',
      ...answers,
      '',
      `The upstream got ${stats.requests} requests, ${stats.withBody} of them with a body (a slow client's), ${stats.aborted} cut while their body was sent.`,
      '',
    ].join('\n'),
  );
} finally {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
