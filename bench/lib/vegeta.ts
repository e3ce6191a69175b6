import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runChecked } from './procs.ts';
import { percentile } from './stats.ts';

/** What one constant-rate run measured. Latencies in microseconds, exact over every request. */
export interface RateResult {
  requests: number;
  /** Seconds over which the requests were sent. */
  durationSeconds: number;
  /** Requests per second vegeta actually sent, and answers per second that succeeded. */
  rate: number;
  throughput: number;
  /** Share of answers with a 2xx/3xx status. */
  success: number;
  statusCodes: Record<string, number>;
  errors: string[];
  latencyUs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
}

export interface VegetaOptions {
  rate: number;
  seconds: number;
  cpus: string | undefined;
  /** Where the binary results file goes (a temp directory). */
  dir: string;
  name: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Default GET. */
  method?: string;
  body?: string;
}

/** Open-loop constant rate: requests leave on schedule whether or not earlier ones returned. */
export async function runVegeta(vegeta: string, url: string, o: VegetaOptions): Promise<RateResult> {
  const results = await attack(vegeta, url, o);
  const report = await vegetaReport(vegeta, results);
  // Per-request results go through a file: child output is capped in memory.
  const encoded = join(o.dir, `vegeta-${o.name}.jsonl`);
  await runChecked('vegeta encode', vegeta, ['encode', '-to=json', `-output=${encoded}`, results], 60_000);
  return summarize(report, readFileSync(encoded, 'utf8'));
}

/** vegeta's own summary of a results file. */
export async function vegetaReport(vegeta: string, results: string): Promise<VegetaReport> {
  return JSON.parse(await runChecked('vegeta report', vegeta, ['report', '-type=json', results], 120_000)) as VegetaReport;
}

/** The same load, unmeasured. */
export async function warmVegeta(vegeta: string, url: string, o: VegetaOptions): Promise<void> {
  await attack(vegeta, url, o);
}

/** Runs vegeta attack; returns the path of its binary results file. */
export async function attack(vegeta: string, url: string, o: VegetaOptions): Promise<string> {
  const targets = join(o.dir, `vegeta-${o.name}.targets`);
  const results = join(o.dir, `vegeta-${o.name}.bin`);
  writeFileSync(targets, vegetaTarget(url, o, join(o.dir, `vegeta-${o.name}.body`)));
  const args = [
    'attack',
    `-rate=${o.rate}/1s`,
    `-duration=${o.seconds}s`,
    '-timeout=5s',
    '-http2=false',
    '-keepalive=true',
    '-max-body=0',
    `-name=${o.name}`,
    `-targets=${targets}`,
    `-output=${results}`,
  ];
  await runChecked('vegeta attack', vegeta, args, (o.seconds + 60) * 1000, { cpus: o.cpus });
  return results;
}

/** A target in vegeta's http format: method and URL, header lines, and `@file` for a body (written to bodyFile). */
export function vegetaTarget(url: string, o: Pick<VegetaOptions, 'headers' | 'method' | 'body'>, bodyFile: string): string {
  const headers = Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${v}\n`);
  if (o.body !== undefined) writeFileSync(bodyFile, o.body);
  return `${o.method ?? 'GET'} ${url}\n${headers.join('')}${o.body !== undefined ? `@${bodyFile}\n` : ''}`;
}

/** The fields of `vegeta report -type=json` used here (durations in ns). */
export interface VegetaReport {
  requests: number;
  duration: number;
  /** t-digest estimates, ns. */
  latencies: { '50th': number; '99th': number };
  rate: number;
  throughput: number;
  success: number;
  status_codes: Record<string, number>;
  errors: string[] | null;
}

/**
 * vegeta's report estimates percentiles with a t-digest and stops at p99, so the
 * percentiles come from every request's latency (`vegeta encode`, ns) instead.
 */
export function summarize(report: VegetaReport, encoded: string): RateResult {
  const latencies: number[] = [];
  for (const line of encoded.split('\n')) {
    if (line === '') continue;
    const r = JSON.parse(line) as { latency: number };
    latencies.push(r.latency / 1000);
  }
  const sorted = Float64Array.from(latencies).sort();
  const mean = latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length);
  return {
    requests: report.requests,
    durationSeconds: report.duration / 1e9,
    rate: report.rate,
    throughput: report.throughput,
    success: report.success,
    statusCodes: report.status_codes,
    errors: report.errors ?? [],
    latencyUs: {
      mean,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      max: sorted[sorted.length - 1] ?? Number.NaN,
    },
  };
}
