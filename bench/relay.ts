import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, HOST } from './lib/net.ts';
import { otlpRoot } from './lib/otlp-request.ts';
import { treeCpuNanos } from './lib/proc.ts';
import { installCleanup, startChild, stopAll } from './lib/procs.ts';
import { startSidecar, startUpstream } from './lib/servers.ts';
import { ratio } from './lib/stats.ts';
import { envWithoutOtel, sidecarTelemetryConfig, startTelemetryFixture } from './lib/telemetry.ts';
import { ensureGoTool, VEGETA, which } from './lib/tools.ts';
import { runVegeta, warmVegeta, type RateResult } from './lib/vegeta.ts';
import { runWrk, writeWrkScript, type SaturationResult } from './lib/wrk.ts';

/**
 * npm run bench:relay: what the OTLP relay costs the sidecar's own proxying. One sidecar with
 * traces, metrics and logs to a receiver in this process and the relay on; the same requests
 * (GET through it to nginx) with and without an agent's telemetry arriving at the relay
 * (bench/lib/otlp-load.ts, its own process: --spans spans/s, 100 per export request, a dozen
 * attributes each, one an e-mail address). Three phases a round, their order turned every
 * round: quiet (no agent telemetry), control (the same load sent to a sink in this process that
 * decodes it: what generating and taking in the load costs a machine whose cores the sidecar
 * shares) and loaded (the load sent to the relay). Per phase: latency at --rate req/s (vegeta,
 * open loop), the sidecar's CPU over it, then requests/s at saturation (wrk). Prints each
 * phase, the medians and the ratios (loaded / control is the relay's own share), and what the
 * relay delivered; never asserts a figure. Exits 1 when something breaks (a server does not
 * start, the relay delivers nothing).
 */

const LOAD = fileURLToPath(new URL('./lib/otlp-load.ts', import.meta.url));
const SPANS_PER_REQUEST = 100;

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    spans: { type: 'string', default: '5000' },
    thread: { type: 'string', default: 'on' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write('npm run bench:relay [-- --rounds N] [--seconds S] [--rate REQ_PER_S] [--spans SPANS_PER_S] [--thread on|off]\n');
  process.exit(0);
}
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const spansPerSecond = Number(values.spans);
if (values.thread !== 'on' && values.thread !== 'off') throw new Error('--thread: on or off');
/** telemetry.relay.thread: the relay's work in a worker thread (on) or on the proxying thread (off). */
const thread = values.thread === 'on';
const log = (line: string) => process.stderr.write(`bench:relay: ${line}\n`);

/** quiet: no agent telemetry; control: the same load sent to a sink in the bench process that decodes it (what the load costs the machine without the relay); loaded: the load sent to the relay. */
type Kind = 'quiet' | 'control' | 'loaded';

interface Phase {
  kind: Kind;
  latency: RateResult;
  /** Sidecar CPU per proxied request over the constant-rate run, µs (with the relay's work in a loaded phase). */
  cpuUsPerRequest: number;
  saturation: SaturationResult;
  sent: { requests: number; ok: number; failed: number; spans: number } | undefined;
}

installCleanup();
const dir = mkdtempSync(join(os.tmpdir(), 'bench-relay-'));
try {
  const vegeta = await ensureGoTool(VEGETA, log);
  const wrk = which('wrk');
  if (wrk === undefined) throw new Error('wrk not found on PATH (apt-get install wrk)');
  const upstream = await startUpstream(dir, undefined);
  const receiver = await startTelemetryFixture();
  const relayPort = await freePort();
  const sink = await startDecodingSink();
  const telemetry = sidecarTelemetryConfig(receiver.endpoint, ['traces', 'metrics', 'logs']);
  const sidecar = await startSidecar(dir, upstream, {
    name: 'sidecar-relay',
    cpus: undefined,
    env: envWithoutOtel(),
    comment: `Traces, metrics and logs to the bench receiver, and the OTLP relay on (${thread ? 'in its worker thread' : 'on the proxying thread'}).`,
    extraConfig: `${telemetry}  relay:\n    enabled: true\n    grpc: false\n    http: ${HOST}:${relayPort}\n    thread: ${thread}\n`,
  });
  const url = sidecar.url;
  const script = writeWrkScript(dir);
  const pid = sidecar.child.proc.pid!;
  log(`sidecar ${url}, relay http://${HOST}:${relayPort}; warming up`);
  await warmVegeta(vegeta, url, { rate, seconds: 5, cpus: undefined, dir, name: 'warmup' });

  const phases: Phase[] = [];
  const orders: Kind[][] = [
    ['quiet', 'control', 'loaded'],
    ['loaded', 'control', 'quiet'],
    ['control', 'loaded', 'quiet'],
    ['quiet', 'loaded', 'control'],
  ];
  for (let r = 0; r < rounds; r++) {
    for (const kind of orders[r % orders.length]!) {
      let load: ReturnType<typeof startChild> | undefined;
      if (kind !== 'quiet') {
        const target = kind === 'loaded' ? `http://${HOST}:${relayPort}/v1/traces` : `${sink.url}/v1/traces`;
        load = startChild('otlp-load', process.execPath, [LOAD, target, String(spansPerSecond), String(SPANS_PER_REQUEST)]);
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
      const c0 = treeCpuNanos(pid);
      const latency = await runVegeta(vegeta, url, { rate, seconds, cpus: undefined, dir, name: `r${r}-${kind}` });
      const cpuUsPerRequest = (treeCpuNanos(pid) - c0) / 1000 / latency.requests;
      const saturation = await runWrk(wrk, script, url, { threads: 2, connections: 64, seconds, cpus: undefined });
      let sent: Phase['sent'];
      if (load !== undefined) {
        load.proc.kill('SIGTERM');
        await load.exited;
        const line = load.stdout().trim().split('\n').at(-1) ?? '';
        sent = line.startsWith('{') ? (JSON.parse(line) as Phase['sent']) : undefined;
      }
      const p: Phase = { kind, latency, cpuUsPerRequest, saturation, sent };
      phases.push(p);
      const rps = saturation.requestsPerSecond;
      log(
        `round ${r + 1} ${kind.padEnd(7)}: p50 ${latency.latencyUs.p50.toFixed(0)} µs, p99 ${latency.latencyUs.p99.toFixed(0)} µs, max ${latency.latencyUs.max.toFixed(0)} µs, ${cpuUsPerRequest.toFixed(0)} µs CPU/request, ${rps.toFixed(0)} req/s saturated${sent ? `; ${kind === 'loaded' ? 'relay' : 'sink'} answered ${sent.ok}/${sent.requests} exports (${sent.spans} spans), ${sent.failed} failed` : ''}`,
      );
    }
  }
  // The receiver counts relayed spans as foreign (their resource lacks the sidecar's mark).
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const counts = receiver.counts();
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const pick = (kind: Kind, f: (p: Phase) => number) => median(phases.filter((p) => p.kind === kind).map(f));
  const rows: Array<[string, (p: Phase) => number, string]> = [
    ['p50 at rate (µs)', (p) => p.latency.latencyUs.p50, 'lower is better'],
    ['p99 at rate (µs)', (p) => p.latency.latencyUs.p99, 'lower is better'],
    ['max at rate (µs)', (p) => p.latency.latencyUs.max, 'lower is better'],
    ['sidecar CPU per request (µs)', (p) => p.cpuUsPerRequest, 'includes the relay when loaded'],
    ['requests/s saturated', (p) => p.saturation.requestsPerSecond, 'higher is better'],
  ];
  process.stdout.write(
    `\nOTLP relay (${thread ? 'worker thread' : 'proxying thread'}) under ${spansPerSecond} spans/s (${SPANS_PER_REQUEST} per export), proxying at ${rate} req/s; medians of ${rounds} rounds\n\n`,
  );
  process.stdout.write('| figure | quiet | control | loaded | control / quiet | loaded / quiet | loaded / control | |\n|---|--:|--:|--:|--:|--:|--:|---|\n');
  for (const [name, f, note] of rows) {
    const [q, c, l] = (['quiet', 'control', 'loaded'] as const).map((k) => pick(k, f)) as [number, number, number];
    const x = (a: number, b: number) => `${ratio(a, b)?.toFixed(2) ?? '-'}x`;
    process.stdout.write(`| ${name} | ${q.toFixed(0)} | ${c.toFixed(0)} | ${l.toFixed(0)} | ${x(c, q)} | ${x(l, q)} | ${x(l, c)} | ${note} |\n`);
  }
  process.stdout.write(
    "\ncontrol: the same load sent to a sink in the bench process that decodes it, not to the relay: what generating and taking in the load costs this machine; loaded / control is the relay's own share.\n",
  );
  await sink.close();
  const sentSpans = phases.filter((p) => p.kind === 'loaded').reduce((n, p) => n + (p.sent?.spans ?? 0), 0);
  const dropped = Object.entries(counts.dropped)
    .filter(([k]) => k.includes('relay'))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  process.stdout.write(
    `\nrelay: ${sentSpans} spans answered, ${counts.foreign} delivered to the receiver${dropped ? `; dropped: ${dropped}` : '; none dropped'}\n`,
  );
  await receiver.close();
  if (sentSpans > 0 && counts.foreign === 0) throw new Error('the relay delivered nothing to the receiver');
} catch (err) {
  process.stderr.write(`bench:relay: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}

/** An OTLP/HTTP sink that decodes every trace request as a collector would, and answers an empty response. */
async function startDecodingSink(): Promise<{ url: string; close(): Promise<void> }> {
  const Req = otlpRoot.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      Req.decode(Buffer.concat(parts));
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://${HOST}:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
