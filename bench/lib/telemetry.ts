import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOtlpReceiver, type OtlpReceiver } from '../../test/otlp-receiver.ts';
import { get } from './net.ts';
import type { TelemetrySignal } from './options.ts';
import { checkServes, type RequestShape, type Server } from './servers.ts';

/**
 * The collector side of `--scenario telemetry`: the project's OTLP/gRPC test receiver (a real
 * gRPC server; metrics decoded, spans and log records counted on the wire), run inside the
 * bench process. It is read and reset every CLEAR_MS; the totals here survive that.
 */

/** Resource attribute sidecar-telemetry is given, so anything else reaching the receiver stands out. */
export const TELEMETRY_MARK = { key: 'bench.target', value: 'sidecar-telemetry' } as const;
export const METRICS_EXPORT_INTERVAL = '5s';
const METRICS_EXPORT_MS = 5000;
const CLEAR_MS = 2000;
const DEFAULT_OTLP_PORT = 4317;
/** Logs are batched for 1 s and spans for 5 s (the defaults), metrics pushed every 5 s. */
const EXPORT_WAIT_MS = 15_000;

export interface TelemetryCounts {
  /** Export calls per signal. */
  requests: { traces: number; metrics: number; logs: number };
  spans: number;
  metricPoints: number;
  logRecords: number;
  /** Items whose resource lacks TELEMETRY_MARK: something other than sidecar-telemetry exports here. */
  foreign: number;
  /** Latest agent_telemetry_dropped value per "signal/reason" (cumulative, from the exported metrics). */
  dropped: Record<string, number>;
}

export interface TelemetryFixture {
  readonly endpoint: string;
  /** Whether the receiver is on the default endpoint (so an off sidecar exporting by mistake would reach it). */
  readonly onDefaultPort: boolean;
  /** Counts since the start (the receiver is emptied regularly; these are not). */
  counts(): TelemetryCounts;
  close(): Promise<void>;
}

function emptyCounts(): TelemetryCounts {
  return { requests: { traces: 0, metrics: 0, logs: 0 }, spans: 0, metricPoints: 0, logRecords: 0, foreign: 0, dropped: {} };
}

/**
 * Listens on 127.0.0.1:4317, the sidecar's default endpoint, when that port is free, so a
 * sidecar that turned telemetry on by mistake would export here and be caught; else anywhere.
 * A peer's own receiver (`mark`: the TELEMETRY_MARK.key value its resource carries) listens
 * on any free port, so that what the peer exports is never counted as the sidecar's.
 */
export async function startTelemetryFixture(o: { mark?: string } = {}): Promise<TelemetryFixture> {
  let receiver: OtlpReceiver;
  const mark = o.mark ?? TELEMETRY_MARK.value;
  // Spans and log records are counted on the wire, not decoded: decoding them would cost the
  // shared CPUs more than the sidecar spends producing them, and be charged to the sidecar.
  const countOnly = { mark };
  if (o.mark !== undefined) {
    receiver = await startOtlpReceiver({ countOnly });
  } else {
    try {
      receiver = await startOtlpReceiver({ port: DEFAULT_OTLP_PORT, countOnly });
    } catch {
      receiver = await startOtlpReceiver({ countOnly });
    }
  }
  const total = emptyCounts();
  const marked = (resource: Record<string, unknown>) => resource[TELEMETRY_MARK.key] === mark;
  // Folds what the receiver holds into the totals and empties it.
  const drain = () => {
    const metrics = receiver.metrics();
    const { spans, logRecords, foreign } = receiver.counted;
    total.requests.traces += receiver.requests.traces;
    total.requests.metrics += receiver.requests.metrics;
    total.requests.logs += receiver.requests.logs;
    receiver.clear();
    total.spans += spans;
    total.metricPoints += metrics.length;
    total.logRecords += logRecords;
    total.foreign += foreign;
    for (const item of metrics) if (!marked(item.resource)) total.foreign++;
    for (const m of metrics) {
      if (m.name !== 'agent_telemetry_dropped' || m.value === undefined) continue;
      const key = `${String(m.attributes.signal)}/${String(m.attributes.reason)}`;
      total.dropped[key] = Math.max(total.dropped[key] ?? 0, m.value);
    }
  };
  const timer = setInterval(drain, CLEAR_MS);
  timer.unref();
  return {
    endpoint: receiver.endpoint,
    onDefaultPort: receiver.port === DEFAULT_OTLP_PORT,
    counts() {
      drain();
      return structuredClone(total);
    },
    async close() {
      clearInterval(timer);
      await receiver.stop();
    },
  };
}

/** sidecar-telemetry's configuration on top of the defaults: the chosen signals, exported to the receiver. */
export function sidecarTelemetryConfig(endpoint: string, signals: readonly TelemetrySignal[]): string {
  const on = (s: TelemetrySignal) => signals.includes(s);
  return `telemetry:
  enabled: true
  endpoint: ${endpoint}
  resourceAttributes:
    ${TELEMETRY_MARK.key}: ${TELEMETRY_MARK.value}
  traces:
    enabled: ${on('traces')}
  metrics:
    otlp: ${on('metrics')}
    prometheus: ${on('metrics')}
    exportInterval: ${METRICS_EXPORT_INTERVAL}
  logs:
    otlp: ${on('logs')}
`;
}

/** Children of the sidecars: without the OTEL_* variables of this shell, plus `extra`. */
export function envWithoutOtel(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTEL_')) env[k] = v;
  return { ...env, ...extra };
}

export interface TelemetryVerification {
  /** What sidecar-telemetry delivered while being checked. */
  seen: { spans: number; metricPoints: number; logRecords: number; accessLines: number; prometheus: boolean };
  /** What sidecar (off) showed: its /metrics status. */
  offMetricsStatus: number | undefined;
}

const REQUESTS = 20;

/**
 * Before any figure: sidecar-telemetry must deliver every chosen signal to the receiver (with
 * logs, no access line on stdout as well: one sink; /metrics on admin), and none it was not given; sidecar (off) must
 * serve no /metrics, and nothing unmarked may reach the receiver while both get requests.
 */
export async function verifyTelemetry(
  fixture: TelemetryFixture,
  on: Server | undefined,
  off: Server | undefined,
  signals: readonly TelemetrySignal[],
  stdoutFile: string,
  log: (line: string) => void,
  shape?: RequestShape,
): Promise<TelemetryVerification> {
  const before = fixture.counts();
  const started = Date.now();
  for (let i = 0; i < REQUESTS; i++) {
    if (on) await checkServes(on, shape);
    if (off) await checkServes(off, shape);
  }
  let offMetricsStatus: number | undefined;
  if (off?.adminUrl) {
    offMetricsStatus = (await get(`${off.adminUrl}/metrics`, 2000)).status;
    if (offMetricsStatus === 200) throw new Error(`sidecar (telemetry off) serves /metrics on ${off.adminUrl}: telemetry is on in it`);
  }
  const seen = { spans: 0, metricPoints: 0, logRecords: 0, accessLines: 0, prometheus: false };
  if (on === undefined) return { seen, offMetricsStatus };

  const delta = () => {
    const c = fixture.counts();
    return {
      spans: c.spans - before.spans,
      metricPoints: c.metricPoints - before.metricPoints,
      logRecords: c.logRecords - before.logRecords,
      foreign: c.foreign - before.foreign,
      requests: {
        traces: c.requests.traces - before.requests.traces,
        metrics: c.requests.metrics - before.requests.metrics,
        logs: c.requests.logs - before.requests.logs,
      },
    };
  };
  const want = {
    traces: (d: ReturnType<typeof delta>) => d.spans >= REQUESTS,
    metrics: (d: ReturnType<typeof delta>) => d.metricPoints > 0,
    logs: (d: ReturnType<typeof delta>) => d.logRecords >= REQUESTS,
  };
  // Wait for every chosen signal, and at least one metrics interval in any case, so an
  // off sidecar exporting by mistake (its spans wait 5 s for their batch) would show up too.
  const minWait = METRICS_EXPORT_MS + 1500;
  let d = delta();
  while (Date.now() - started < EXPORT_WAIT_MS) {
    d = delta();
    if (signals.every((s) => want[s](d)) && Date.now() - started >= minWait) break;
    await sleep(250);
  }
  const missing = signals.filter((s) => !want[s](d));
  if (missing.length > 0) {
    throw new Error(
      `${on.name} did not export ${missing.join(', ')} within ${EXPORT_WAIT_MS} ms (received ${JSON.stringify(d)}):\n${on.child.stderr().slice(-2000)}`,
    );
  }
  const unexpected = (['traces', 'metrics', 'logs'] as const).filter((s) => !signals.includes(s) && d.requests[s] > 0);
  if (unexpected.length > 0)
    throw new Error(`${on.name} exported ${unexpected.join(', ')}, which --telemetry-signals left out (received ${JSON.stringify(d)})`);
  if (d.foreign > 0) throw new Error(`the OTLP receiver got ${d.foreign} item(s) not from ${on.name}: another sidecar exports telemetry`);

  const metricsStatus = on.adminUrl ? (await get(`${on.adminUrl}/metrics`, 2000)).status : 0;
  if (signals.includes('metrics') !== (metricsStatus === 200)) {
    throw new Error(`${on.name} /metrics answered ${metricsStatus} with signals ${signals.join(',')}`);
  }
  // Access records have one sink by default: exported as log records, so none on stdout.
  let accessLines = 0;
  if (signals.includes('logs')) {
    // The sidecar's stdout writes are asynchronous: give them a moment to show up if they were (wrongly) written.
    await sleep(200);
    accessLines = readFileSync(stdoutFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"event_type":"access"')).length;
    if (accessLines > 0)
      throw new Error(`${on.name} wrote ${accessLines} access lines to stdout (${stdoutFile}) as well as exporting them: one sink is the default`);
  }
  const result = {
    seen: { spans: d.spans, metricPoints: d.metricPoints, logRecords: d.logRecords, accessLines, prometheus: metricsStatus === 200 },
    offMetricsStatus,
  };
  log(
    `telemetry verified in ${((Date.now() - started) / 1000).toFixed(1)}s: ${on.name} exported ${d.spans} spans, ${d.metricPoints} metric points, ${d.logRecords} log records` +
      `${signals.includes('logs') ? ', no access line on stdout (one sink)' : ''}; sidecar (off) /metrics ${offMetricsStatus ?? '-'} and nothing else reached the receiver`,
  );
  return result;
}
