import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTool, tail } from './procs.ts';

/** What one wrk run measured. Latencies in microseconds. */
export interface SaturationResult {
  requests: number;
  durationSeconds: number;
  requestsPerSecond: number;
  latencyUs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /** Socket errors and non-2xx/3xx responses. */
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
}

export interface WrkOptions {
  threads: number;
  connections: number;
  seconds: number;
  cpus: string | undefined;
  /** Extra request headers. */
  headers?: Record<string, string>;
}

const MARKER = 'BENCH_JSON ';

// wrk's done() hook: the summary as one JSON line, percentiles from wrk's own histogram (µs).
const DONE_SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${MARKER}{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
    '"latency_us":{"mean":%.3f,"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f,"max":%.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
`;

/** The Lua script: the request's method and body when it has them (headers go as -H), and the done() hook. */
export function wrkScript(request: { method?: string; body?: string } = {}): string {
  const lines: string[] = [];
  if (request.method !== undefined && request.method !== 'GET') lines.push(`wrk.method = ${JSON.stringify(request.method)}`);
  if (request.body !== undefined) {
    // A Lua long bracket: no escapes inside, so the level must not occur in the body.
    let level = '=';
    while (request.body.includes(`]${level}]`)) level += '=';
    lines.push(`wrk.body = [${level}[${request.body}]${level}]`);
  }
  return `${lines.join('\n')}${DONE_SCRIPT}`;
}

export function writeWrkScript(dir: string, request: { method?: string; body?: string } = {}): string {
  const file = join(dir, 'wrk-script.lua');
  writeFileSync(file, wrkScript(request));
  return file;
}

/** Closed-loop saturation: every connection sends its next request as soon as the last answer arrives. */
export async function runWrk(wrk: string, script: string, url: string, o: WrkOptions): Promise<SaturationResult> {
  const headers = Object.entries(o.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${o.seconds}s`, '--timeout', '5s', ...headers, '-s', script, url];
  const r = await runTool('wrk', wrk, args, (o.seconds + 30) * 1000, { cpus: o.cpus });
  if (r.code !== 0) throw new Error(`wrk exited with ${r.code}:\n${tail(r.stderr || r.stdout)}`);
  return parseWrk(r.stdout);
}

interface WrkJson {
  requests: number;
  duration_us: number;
  errors: SaturationResult['errors'];
  latency_us: SaturationResult['latencyUs'];
}

export function parseWrk(stdout: string): SaturationResult {
  const line = stdout.split('\n').find((l) => l.startsWith(MARKER));
  if (line === undefined) throw new Error(`wrk printed no summary line:\n${tail(stdout)}`);
  const j = JSON.parse(line.slice(MARKER.length)) as WrkJson;
  const durationSeconds = j.duration_us / 1e6;
  return {
    requests: j.requests,
    durationSeconds,
    requestsPerSecond: j.requests / durationSeconds,
    latencyUs: j.latency_us,
    errors: j.errors,
  };
}

export function errorCount(e: SaturationResult['errors']): number {
  return e.connect + e.read + e.write + e.timeout + e.status;
}
