import { diag, DiagLogLevel, TraceFlags, type Attributes, type Context, type Counter } from '@opentelemetry/api';
import { ExportResultCode, setGlobalErrorHandler } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { createEmptyMetadata, type OTLPGRPCExporterConfigNode } from '@opentelemetry/otlp-grpc-exporter-base';
import type { Resource } from '@opentelemetry/resources';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { LogThrottle } from '../stores/index.ts';
import { Batcher } from './otlp/batcher.ts';
import { LogsEncoder, type LogEntry } from './otlp/logs.ts';
import { sdkLogsEncoding, sdkSpansEncoding } from './otlp/sdk.ts';
import { SpansEncoder, type EncodedSpan } from './otlp/spans.ts';
import { createGrpcTransport } from './otlp/transport.ts';
import type { TelemetryProtection } from './protection.ts';
import type { TelemetrySettings } from './settings.ts';
import type { DropCounter, Signal } from './signal.ts';

export type { DropCounter, Signal } from './signal.ts';

/** What the pipelines take from the resolved settings: metadata, and each signal's batching and timeout. */
export type ExportConfig = Pick<TelemetrySettings, 'endpoints' | 'headers' | 'encoder' | 'traces' | 'logs' | 'metrics'>;

/** Exports of one signal in flight at once; past that, batches wait in their queue. */
const MAX_EXPORTS_IN_FLIGHT = 4;

export function createDropCounter(counter: () => Counter | undefined, throttle: LogThrottle): DropCounter {
  const attrs = new Map<string, Attributes>();
  return {
    dropped(signal, reason, count) {
      const key = `${signal}|${reason}`;
      let a = attrs.get(key);
      if (a === undefined) attrs.set(key, (a = { signal, reason }));
      counter()?.add(count, a);
      if (reason === 'export_failed')
        throttle.warn({ event_type: 'telemetry_export_failed', signal, dropped: count }, `telemetry export failing: ${signal} dropped (is the collector up?)`);
    },
  };
}

/**
 * A signal's exporter options: its resolved endpoint and export timeout, metadata over
 * OTEL_EXPORTER_OTLP_HEADERS (which the exporter reads itself, as it does TLS files).
 */
export function exporterOptions(config: ExportConfig, signal: Signal): OTLPGRPCExporterConfigNode {
  const options: OTLPGRPCExporterConfigNode = { url: config.endpoints[signal], timeoutMillis: config[signal].exportTimeout };
  const entries = Object.entries(config.headers);
  if (entries.length > 0) {
    const metadata = createEmptyMetadata();
    for (const [k, v] of entries) metadata.set(k.toLowerCase(), v);
    options.metadata = metadata;
  }
  return options;
}

/** Finished, sampled spans into a Batcher, as they are (`prepare` undefined) or as `prepare` makes them. */
class BatchingSpanProcessor<T> implements SpanProcessor {
  readonly #batcher: Batcher<T>;
  readonly #prepare: (span: ReadableSpan) => T;
  readonly #drops: DropCounter;
  constructor(batcher: Batcher<T>, prepare: (span: ReadableSpan) => T, drops: DropCounter) {
    this.#batcher = batcher;
    this.#prepare = prepare;
    this.#drops = drops;
  }
  onStart(_span: Span, _ctx: Context): void {}
  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    // A span a full queue would drop is not worth encoding.
    if (this.#batcher.droppedIfFull()) return;
    let item: T;
    try {
      item = this.#prepare(span);
    } catch {
      // Encoding runs as the request ends: a span it cannot write is dropped and counted, never the request's problem.
      this.#drops.dropped('traces', 'export_failed', 1);
      return;
    }
    this.#batcher.push(item);
  }
  forceFlush(): Promise<void> {
    return this.#batcher.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.#batcher.shutdown();
  }
}

function logsEncoding(resource: Resource, scopeName: string, scopeVersion: string): (entries: LogEntry[]) => Uint8Array {
  const encoder = new LogsEncoder(resource, scopeName, scopeVersion);
  return (entries) => encoder.encode(entries);
}

/**
 * Spans to OTLP gRPC behind a Batcher (bounded, counted, several exports in flight, no
 * encoding while the collector refuses). With the sidecar's encoder each finished span is
 * protected and encoded at once, and what waits for its batch is its bytes: a span object
 * that lived until export outlived one or two scavenges and was promoted, so every span
 * became old-generation garbage (`npm run bench -- --scenario full --cpu-prof` shows the
 * garbage collector's share; bench/README.md, Measured decisions). `telemetry.encoder: sdk`
 * keeps the spans and lets the SDK's serializer encode each batch, protected just before.
 */
export function createSpanPipeline(config: ExportConfig, drops: DropCounter, protect?: TelemetryProtection): SpanProcessor {
  const t = config.traces;
  const batching = <T>(encode: (items: T[]) => Uint8Array) =>
    new Batcher<T>({
      signal: 'traces',
      queueSize: t.queueSize,
      batchSize: t.batchSize,
      scheduledDelay: t.scheduledDelay,
      maxInFlight: MAX_EXPORTS_IN_FLIGHT,
      transport: createGrpcTransport('traces', exporterOptions(config, 'traces'), encode),
      drops,
    });
  if (config.encoder === 'sdk') {
    const encode = sdkSpansEncoding();
    return new BatchingSpanProcessor(
      batching<ReadableSpan>((spans) => encode(protect ? protect.spans(spans) : spans)),
      (span) => span,
      drops,
    );
  }
  const encoder = new SpansEncoder();
  return new BatchingSpanProcessor(
    batching<EncodedSpan>((spans) => encoder.encodeEncoded(spans)),
    (span) => encoder.encodeOne(protect ? protect.spans([span])[0]! : span),
    drops,
  );
}

/** Access records and audit events to OTLP gRPC: batched plain objects, encoded by LogsEncoder. */
export function createLogBatcher(
  config: ExportConfig,
  resource: Resource,
  version: string,
  drops: DropCounter,
  protect?: TelemetryProtection,
): Batcher<LogEntry> {
  const l = config.logs;
  const encode = config.encoder === 'sdk' ? sdkLogsEncoding(resource, 'agent-sidecar', version) : logsEncoding(resource, 'agent-sidecar', version);
  return new Batcher<LogEntry>({
    signal: 'logs',
    queueSize: l.queueSize,
    batchSize: l.batchSize,
    scheduledDelay: l.scheduledDelay,
    maxInFlight: MAX_EXPORTS_IN_FLIGHT,
    transport: createGrpcTransport('logs', exporterOptions(config, 'logs'), (entries: LogEntry[]) => encode(protect ? protect.logs(entries) : entries)),
    drops,
  });
}

/** The OTLP metric exporter, counting the data points of failed exports. */
export function createMetricExporter(config: ExportConfig, drops: DropCounter, protect?: TelemetryProtection): PushMetricExporter {
  const inner = new OTLPMetricExporter(exporterOptions(config, 'metrics'));
  const wrapped: PushMetricExporter = {
    export(metrics, done) {
      inner.export(protect ? protect.metrics(metrics) : metrics, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) drops.dropped('metrics', 'export_failed', countDataPoints(metrics));
        done(result);
      });
    },
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
    selectAggregationTemporality: (t) => inner.selectAggregationTemporality(t),
    selectAggregation: (t) => inner.selectAggregation(t),
  };
  return wrapped;
}

function countDataPoints(rm: ResourceMetrics): number {
  let n = 0;
  for (const sm of rm.scopeMetrics) for (const m of sm.metrics) n += m.dataPoints.length;
  return n;
}

/**
 * The exporters read these variables too, though they are always handed the timeout
 * settings.ts resolved (and warned about, with 0 as no limit): their own complaints are noise.
 */
const OWN_VARIABLES = /\bOTEL_EXPORTER_OTLP_(?:(?:TRACES|METRICS|LOGS)_)?TIMEOUT\b/;

/**
 * The SDK's diagnostics and its global error handler go to one throttled warning: during
 * an outage every export fails the same way, and one line per interval says as much.
 */
export function routeSdkErrors(throttle: LogThrottle): void {
  const warn = (message: string, ...args: unknown[]) => {
    if (OWN_VARIABLES.test(message)) return;
    throttle.warn({ event_type: 'telemetry_error', detail: args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ') }, `telemetry: ${message}`);
  };
  const noop = () => {};
  diag.setLogger({ error: warn, warn, info: noop, debug: noop, verbose: noop }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  setGlobalErrorHandler((err) => warn('an exporter or processor failed', err));
}
