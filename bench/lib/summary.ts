import type { RunMeta } from './meta.ts';
import type { BenchOptions, Scenario, TargetName } from './options.ts';
import { checkValue, type Comparison, type Measurements, type PeerTelemetry, type TelemetryNote } from './report.ts';

/** What one scenario of a run measured (also what latest.json holds per scenario with --scenario all). */
export interface ScenarioRun {
  scenario: Scenario;
  targets: TargetName[];
  startedAt: string;
  finishedAt: string;
  measurements: Measurements;
  comparison: Comparison;
  telemetry?: TelemetryNote | undefined;
  /** Peers that record too (agentgateway in full): what their own receivers got. */
  peerTelemetry?: PeerTelemetry[] | undefined;
}

const LETTER: Record<Scenario, string> = { passthrough: 'a', auth: 'b', full: 'c', protect: 'd', sse: 'e', egress: 'f', telemetry: '-' };
const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const MB = 1024 * 1024;

function n(v: number | undefined, digits = 0): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  return digits === 0 ? int.format(Math.round(v)) : v.toFixed(digits);
}

function signed(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : `${v >= 0 ? '+' : '−'}${int.format(Math.abs(Math.round(v)))}`;
}

function row(cells: readonly string[]): string {
  return `| ${cells.join(' | ')} |`;
}

/**
 * The README's Performance table, in Markdown: every target of every scenario of a
 * `--scenario all` run, the SSE streams apart, then every target checked with its verdict.
 */
export function performanceTable(
  runs: readonly ScenarioRun[],
  skipped: ReadonlyArray<{ scenario: Scenario; reason: string }>,
  o: {
    meta: RunMeta;
    options: Pick<BenchOptions, 'rate' | 'saturationSeconds' | 'rateSeconds' | 'threads' | 'connections' | 'streams' | 'events' | 'source' | 'cpuProfile'>;
    pinning: string;
  },
): string {
  const { meta, options } = o;
  const out = [
    `Machine: ${meta.cpus} CPUs (${meta.cpuModel}), ${meta.kernel}, ${o.pinning}; Node ${meta.node}, ${meta.nginx}, ${meta.wrk}, vegeta ${meta.vegeta}${meta.agentgateway ? `, agentgateway ${meta.agentgateway}` : ''}; commit ${meta.gitCommit}; load average before the run ${meta.loadAverage.join(' ')}.`,
    `The sidecar ${options.source ? 'from src/ (--source: type stripping adds about 40 MB of RSS)' : 'as deployed: bin/agent-sidecar.js on the build in dist/'}${options.cpuProfile ? ', with --cpu-prof (more CPU and RSS than without)' : ''}.`,
    `Saturation: wrk -t${options.threads} -c${options.connections}, ${options.saturationSeconds} s per target. Latency: vegeta at ${options.rate} req/s for ${options.rateSeconds} s, exact percentiles in µs; +pNN is added over direct. CPU: cores per 1000 req/s at that rate. RSS: the largest VmRSS of the server's processes at that rate (measured first, on a server only warmed up), the anonymous part of it (RssAnon: the rest is the binary's and libraries' file-backed pages), then under saturation (measured after it).`,
    '',
    row(['scenario', 'target', 'req/s', 'p50', 'p99', 'p99.9', '+p50', '+p99', 'CPU cores / 1000 req/s', 'RSS MB', 'of which anonymous', 'RSS MB saturated']),
    row(['---', '---', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:']),
  ];
  for (const r of runs) {
    const m = r.measurements;
    for (const t of r.targets) {
      const sat = m.saturation[t];
      const rate = m.rate[t];
      if (!sat && !rate) continue;
      const added = t === 'direct' ? undefined : r.comparison.rate.addedUs[t];
      out.push(
        row([
          `(${LETTER[r.scenario]}) ${r.scenario}`,
          t,
          n(sat?.requestsPerSecond),
          n(rate?.latencyUs.p50),
          n(rate?.latencyUs.p99),
          n(rate?.latencyUs.p999),
          t === 'direct' ? '' : signed(added?.p50),
          t === 'direct' ? '' : signed(added?.p99),
          n(r.comparison.rate.coresPer1000Rps[t], 3),
          n(m.rssBytes.rate[t] === undefined ? undefined : m.rssBytes.rate[t]! / MB, 1),
          n(m.anonBytes.rate[t] === undefined ? undefined : m.anonBytes.rate[t]! / MB, 1),
          n(m.rssBytes.saturation[t] === undefined ? undefined : m.rssBytes.saturation[t]! / MB, 1),
        ]),
      );
    }
  }
  const streamRuns = runs.filter((r) => Object.keys(r.measurements.streams).length > 0);
  if (streamRuns.length > 0) {
    out.push(
      '',
      `SSE: ${options.streams} concurrent streams of ${options.events} events for ${options.saturationSeconds} s per target; TTFE is the time to the first event; µs.`,
      '',
      row(['scenario', 'target', 'events/s', 'TTFE p50', 'TTFE p99', 'total p50', 'total p99', '+TTFE p50', '+total p50', 'CPU ms / 1000 events', 'RSS MB']),
      row(['---', '---', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:']),
    );
    for (const r of streamRuns) {
      const m = r.measurements;
      for (const t of r.targets) {
        const s = m.streams[t];
        if (!s) continue;
        const a = r.comparison.streams.addedUs[t];
        const cpu = m.cpuSeconds.streams[t];
        const events = s.eventsPerSecond * s.durationSeconds;
        out.push(
          row([
            `(${LETTER[r.scenario]}) ${r.scenario}`,
            t,
            n(s.eventsPerSecond),
            n(s.ttfeUs.p50),
            n(s.ttfeUs.p99),
            n(s.totalUs.p50),
            n(s.totalUs.p99),
            t === 'direct' ? '' : signed(a?.ttfeP50),
            t === 'direct' ? '' : signed(a?.totalP50),
            n(cpu === undefined || events === 0 ? undefined : (cpu / events) * 1e6, 2),
            n(m.rssBytes.streams[t] === undefined ? undefined : m.rssBytes.streams[t]! / MB, 1),
          ]),
        );
      }
    }
  }
  const checks = runs.flatMap((r) => r.comparison.checks.map((c) => ({ scenario: r.scenario, c })));
  if (checks.length > 0) {
    out.push('', row(['scenario', 'check', 'measured', 'verdict']), row(['---', '---', '--:', '---']));
    for (const { scenario, c } of checks) {
      const verdict = c.pass === undefined ? 'n/a' : c.pass ? 'PASS' : 'MISS';
      out.push(
        row([
          `(${LETTER[scenario]}) ${scenario}`,
          `${c.name}, target ${c.op === '>=' ? '≥' : '≤'} ${checkValue({ ...c, value: c.limit })}`,
          checkValue(c),
          verdict,
        ]),
      );
    }
  }
  for (const s of skipped) out.push('', `(${LETTER[s.scenario]}) ${s.scenario}: not measured: ${s.reason}.`);
  return out.join('\n');
}
