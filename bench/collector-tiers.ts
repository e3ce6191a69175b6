import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { locateStack } from '../scripts/stack/build.ts';
import { stablePort, startCollector, type Collector } from '../test/e2e/services.ts';
import { startOtlpReceiver } from '../test/otlp-receiver.ts';
import { get } from './lib/net.ts';
import { treeCpuNanos } from './lib/proc.ts';
import { installCleanup, startChild, stopAll } from './lib/procs.ts';
import { ratio } from './lib/stats.ts';

/**
 * npm run bench:collector-tiers: what the agent tier of collector/profiles/agent-tier.yaml
 * costs. Two gateway collectors (otelcol.yaml + high-volume + gateway-tier, each exporting to
 * a receiver in this process) and one agent-tier collector routing to them by trace id, as
 * in test/e2e/collector-tiers.test.ts (root only: the agent finds the gateways through a
 * hosts file of its own). The same OTLP/HTTP load (bench/lib/otlp-load.ts, its own process:
 * --spans spans/s, 100 per request, traces of 4 spans with new ids) in alternating phases:
 * `direct` to gateway a (one tier), `tiered` to the agent (two tiers). Per phase: spans the
 * gateways accepted per second, and each collector's CPU per 1,000 spans. Prints each phase,
 * the medians and tiered / direct; never asserts a figure. Exits 1 when something breaks.
 */

const LOAD = fileURLToPath(new URL('./lib/otlp-load.ts', import.meta.url));
const SPANS_PER_REQUEST = 100;
const SPANS_PER_TRACE = 4;
const NAME = 'gateways.otelcol.bench';
const ADDRESSES = { a: '127.0.0.2', b: '127.0.0.3' } as const;

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '15' },
    spans: { type: 'string', default: '10000' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write('npm run bench:collector-tiers [-- --rounds N] [--seconds S] [--spans SPANS_PER_S]\n');
  process.exit(0);
}
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const spansPerSecond = Number(values.spans);
const log = (line: string) => process.stderr.write(`bench:collector-tiers: ${line}\n`);

/** A collector's own metric (Prometheus text), summed over its series. */
async function metric(c: Collector, name: string): Promise<number> {
  const { body } = await get(`http://${c.telemetryTarget}/metrics`, 2000);
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

interface Phase {
  tiered: boolean;
  offered: number;
  /** Spans the gateways' receivers accepted, per second of the phase. */
  accepted: number;
  /** CPU per 1,000 spans offered, ms. */
  agentCpu: number;
  gatewaysCpu: number;
  failed: number;
}

installCleanup();
const dir = mkdtempSync(join(os.tmpdir(), 'bench-collector-tiers-'));
try {
  if (process.getuid?.() !== 0) throw new Error('needs root: the agent sees the gateways through a hosts file in a mount namespace of its own');
  const stack = locateStack();
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, `127.0.0.1 localhost\n${ADDRESSES.a} ${NAME}\n${ADDRESSES.b} ${NAME}\n`);
  const receivers = [await startOtlpReceiver({ countOnly: { mark: 'bench-agent' } }), await startOtlpReceiver({ countOnly: { mark: 'bench-agent' } })];
  const port = await stablePort(Object.values(ADDRESSES));
  const elasticsearch = `http://127.0.0.1:${await stablePort()}`;
  const gzip = join(dir, 'gzip.yaml'); // the receivers here speak gzip, not zstd
  writeFileSync(gzip, 'exporters:\n  otlp_grpc/jaeger:\n    compression: gzip\n');
  const gateways = await Promise.all(
    (['a', 'b'] as const).map((g, i) =>
      startCollector(stack, join(dir, `gateway-${g}`), {
        profile: ['high-volume', 'gateway-tier'],
        elasticsearch,
        jaegerOtlp: `127.0.0.1:${receivers[i]!.port}`,
        otlpGrpc: `${ADDRESSES[g]}:${port}`,
        overlays: [gzip],
      }),
    ),
  );
  const agent = await startCollector(stack, join(dir, 'agent'), {
    profile: 'agent-tier',
    elasticsearch,
    jaegerOtlp: '127.0.0.1:9',
    hosts,
    env: { OTELCOL_GATEWAY_HOSTNAME: NAME, OTELCOL_GATEWAY_PORT: String(port), OTELCOL_GATEWAY_RESOLVE_INTERVAL: '1s' },
  });
  const accepted = async () => (await Promise.all(gateways.map((g) => metric(g, 'otelcol_receiver_accepted_spans')))).reduce((a, b) => a + b, 0);
  const cpu = (c: Collector) => treeCpuNanos(c.child.proc.pid!);
  log(`agent ${agent.otlpHttpUrl}, gateways ${ADDRESSES.a}:${port} and ${ADDRESSES.b}:${port}; ${spansPerSecond} spans/s per phase`);

  const phases: Phase[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const tiered of r % 2 === 0 ? [false, true] : [true, false]) {
      const target = `${tiered ? agent.otlpHttpUrl : gateways[0]!.otlpHttpUrl}/v1/traces`;
      const load = startChild('otlp-load', process.execPath, [LOAD, target, String(spansPerSecond), String(SPANS_PER_REQUEST), String(SPANS_PER_TRACE)]);
      await sleep(3000);
      const [a0, ag0, g0] = [await accepted(), cpu(agent), gateways.map(cpu)];
      await sleep(seconds * 1000);
      const [a1, ag1, g1] = [await accepted(), cpu(agent), gateways.map(cpu)];
      load.proc.kill('SIGTERM');
      await load.exited;
      const sent = JSON.parse(load.stdout().trim().split('\n').at(-1) ?? '{}') as { failed?: number };
      const offered = spansPerSecond * seconds;
      const p: Phase = {
        tiered,
        offered: spansPerSecond,
        accepted: (a1 - a0) / seconds,
        agentCpu: (ag1 - ag0) / 1e6 / (offered / 1000),
        gatewaysCpu: g1.reduce((sum, c, i) => sum + c - g0[i]!, 0) / 1e6 / (offered / 1000),
        failed: sent.failed ?? 0,
      };
      phases.push(p);
      log(
        `round ${r + 1} ${tiered ? 'tiered' : 'direct'}: gateways accepted ${p.accepted.toFixed(0)} spans/s; CPU per 1,000 spans: agent ${p.agentCpu.toFixed(1)} ms, gateways ${p.gatewaysCpu.toFixed(1)} ms; ${p.failed} requests failed`,
      );
      await sleep(3000); // the agent's batch and queue drain before the next phase
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const pick = (tiered: boolean, f: (p: Phase) => number) => median(phases.filter((p) => p.tiered === tiered).map(f));
  const rows: Array<[string, (p: Phase) => number, string]> = [
    ['spans/s accepted by the gateways', (p) => p.accepted, `${spansPerSecond} offered`],
    ['agent-tier CPU per 1,000 spans (ms)', (p) => p.agentCpu, 'the hop two tiers add'],
    ['gateways CPU per 1,000 spans (ms)', (p) => p.gatewaysCpu, 'tail sampling, redaction, export'],
    ['all collectors, CPU per 1,000 spans (ms)', (p) => p.agentCpu + p.gatewaysCpu, ''],
  ];
  process.stdout.write(
    `\nCollector tiers under ${spansPerSecond} spans/s (${SPANS_PER_REQUEST} per request, ${SPANS_PER_TRACE} per trace); medians of ${rounds} rounds\n\n`,
  );
  process.stdout.write('| figure | direct | tiered | tiered / direct | |\n|---|--:|--:|--:|---|\n');
  for (const [name, f, note] of rows) {
    const d = pick(false, f);
    const t = pick(true, f);
    process.stdout.write(`| ${name} | ${d.toFixed(1)} | ${t.toFixed(1)} | ${ratio(t, d)?.toFixed(2) ?? '-'}x | ${note} |\n`);
  }
  const agentMs = pick(true, (p) => p.agentCpu);
  process.stdout.write(`\nagent tier: ${agentMs.toFixed(1)} ms of CPU per 1,000 spans, about ${(1e6 / agentMs / 1000).toFixed(0)}k spans/s per core\n`);
  await Promise.all(receivers.map((r) => r.stop()));
  if (phases.some((p) => p.accepted === 0)) throw new Error('a phase delivered nothing to the gateways');
} catch (err) {
  process.stderr.write(`bench:collector-tiers: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}
