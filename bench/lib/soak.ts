import { RssSampler } from './proc.ts';
import { slope } from './stats.ts';
import { attack, vegetaReport, type VegetaOptions } from './vegeta.ts';

/**
 * --soak: the constant rate on one sidecar for minutes, its RSS sampled every 10 s. Flat
 * means the least-squares slope over all samples stays small (report.ts TARGETS).
 */

export const SOAK_SAMPLE_SECONDS = 10;
const MB = 1024 * 1024;

export interface SoakResult {
  target: string;
  minutes: number;
  rate: number;
  sampleSeconds: number;
  /** Seconds since the start, bytes. */
  samples: Array<{ atSeconds: number; bytes: number }>;
  firstBytes: number;
  lastBytes: number;
  maxBytes: number;
  /** Least-squares slope of RSS over time; undefined with fewer than two samples. */
  slopeMbPerMinute: number | undefined;
  requests: number;
  success: number;
  /** vegeta's t-digest estimates: enough for a soak, which is about memory. */
  latencyUs: { p50: number; p99: number };
}

export function summarizeSoak(
  o: { target: string; minutes: number; rate: number; sampleSeconds: number },
  samples: ReadonlyArray<{ atSeconds: number; bytes: number }>,
  run: { requests: number; success: number; latencyUs: { p50: number; p99: number } },
): SoakResult {
  if (samples.length === 0) throw new Error('soak: no RSS sample');
  return {
    ...o,
    samples: [...samples],
    firstBytes: samples[0]!.bytes,
    lastBytes: samples[samples.length - 1]!.bytes,
    maxBytes: Math.max(...samples.map((s) => s.bytes)),
    slopeMbPerMinute: slope(samples.map((s) => ({ x: s.atSeconds / 60, y: s.bytes / MB }))),
    ...run,
  };
}

export async function runSoak(
  vegeta: string,
  url: string,
  o: Omit<VegetaOptions, 'seconds'> & { minutes: number; target: string; pid: number },
): Promise<SoakResult> {
  const sampler = new RssSampler(o.pid, SOAK_SAMPLE_SECONDS * 1000);
  let results: string;
  try {
    results = await attack(vegeta, url, { ...o, seconds: o.minutes * 60 });
  } finally {
    sampler.stop();
  }
  const report = await vegetaReport(vegeta, results);
  return summarizeSoak(
    { target: o.target, minutes: o.minutes, rate: o.rate, sampleSeconds: SOAK_SAMPLE_SECONDS },
    sampler.samples.map((s) => ({ atSeconds: s.atMs / 1000, bytes: s.bytes })),
    { requests: report.requests, success: report.success, latencyUs: { p50: report.latencies['50th'] / 1000, p99: report.latencies['99th'] / 1000 } },
  );
}
