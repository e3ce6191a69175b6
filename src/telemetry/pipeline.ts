import { diag, DiagLogLevel, TraceFlags, type Attributes, type Context, type Counter } from '@opentelemetry/api';
import { ExportResultCode, setGlobalErrorHandler, type ExportResult } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { createEmptyMetadata, type OTLPGRPCExporterConfigNode } from '@opentelemetry/otlp-grpc-exporter-base';
import { BatchLogRecordProcessor, type LogRecordExporter, type LogRecordProcessor, type ReadableLogRecord, type ReadWriteLogRecord } from '@opentelemetry/sdk-logs';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, type ReadableSpan, type Span, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace';
import type { LogThrottle } from '../stores/index.ts';
import type { TelemetryConfig } from './settings.ts';

export type Signal = 'traces' | 'metrics' | 'logs';

/** Counts what never reached the collector: agent_telemetry_dropped_total{signal, reason}. */
export interface DropCounter {
  dropped(signal: Signal, reason: 'queue_full' | 'export_failed', count: number): void;
}

export function createDropCounter(counter: () => Counter | undefined, throttle: LogThrottle): DropCounter {
  const attrs = new Map<string, Attributes>();
  return {
    dropped(signal, reason, count) {
      const key = `${signal}|${reason}`;
      let a = attrs.get(key);
      if (a === undefined) attrs.set(key, (a = { signal, reason }));
      counter()?.add(count, a);
      if (reason === 'export_failed') throttle.warn({ event_type: 'telemetry_export_failed', signal, dropped: count }, `telemetry export failing: ${signal} dropped (is the collector up?)`);
    },
  };
}

/**
 * Exporter options shared by the three signals: the endpoint (undefined lets the
 * OTEL_EXPORTER_OTLP_*_ENDPOINT variables decide), metadata over OTEL_EXPORTER_OTLP_HEADERS.
 */
export function exporterOptions(endpoint: string | undefined, config: TelemetryConfig): OTLPGRPCExporterConfigNode {
  const options: OTLPGRPCExporterConfigNode = { timeoutMillis: config.exportTimeout };
  if (endpoint !== undefined) options.url = endpoint;
  const entries = Object.entries(config.headers);
  if (entries.length > 0) {
    const metadata = createEmptyMetadata();
    for (const [k, v] of entries) metadata.set(k.toLowerCase(), v);
    options.metadata = metadata;
  }
  return options;
}

/**
 * The queue in front of a batch processor: spans or records past `max` waiting are dropped
 * here and counted (the SDK's processors drop silently but for a debug line).
 */
interface Gate {
  pending: number;
  readonly max: number;
}

function countingExport<T>(signal: Signal, gate: Gate | undefined, drops: DropCounter, size: (items: T) => number, inner: (items: T, cb: (r: ExportResult) => void) => void) {
  return (items: T, cb: (r: ExportResult) => void): void => {
    const n = size(items);
    if (gate !== undefined) gate.pending = Math.max(0, gate.pending - n);
    inner(items, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) drops.dropped(signal, 'export_failed', n);
      cb(result);
    });
  };
}

class GatedSpanProcessor implements SpanProcessor {
  readonly #inner: SpanProcessor;
  readonly #gate: Gate;
  readonly #drops: DropCounter;
  constructor(inner: SpanProcessor, gate: Gate, drops: DropCounter) {
    this.#inner = inner;
    this.#gate = gate;
    this.#drops = drops;
  }
  onStart(_span: Span, _ctx: Context): void {}
  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.#gate.pending >= this.#gate.max) {
      this.#drops.dropped('traces', 'queue_full', 1);
      return;
    }
    this.#gate.pending++;
    this.#inner.onEnd(span);
  }
  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

class GatedLogProcessor implements LogRecordProcessor {
  readonly #inner: LogRecordProcessor;
  readonly #gate: Gate;
  readonly #drops: DropCounter;
  constructor(inner: LogRecordProcessor, gate: Gate, drops: DropCounter) {
    this.#inner = inner;
    this.#gate = gate;
    this.#drops = drops;
  }
  onEmit(record: ReadWriteLogRecord, context?: Context): void {
    if (this.#gate.pending >= this.#gate.max) {
      this.#drops.dropped('logs', 'queue_full', 1);
      return;
    }
    this.#gate.pending++;
    this.#inner.onEmit(record, context);
  }
  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

/** BatchSpanProcessor -> OTLP gRPC, behind a counted bounded queue. */
export function createSpanPipeline(endpoint: string | undefined, config: TelemetryConfig, drops: DropCounter, exporter?: SpanExporter): SpanProcessor {
  const t = config.traces;
  const gate: Gate = { pending: 0, max: t.queueSize };
  const inner = exporter ?? new OTLPTraceExporter(exporterOptions(endpoint, config));
  const wrapped: SpanExporter = {
    export: countingExport<ReadableSpan[]>('traces', gate, drops, (s) => s.length, (s, cb) => inner.export(s, cb)),
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
  const batch = new BatchSpanProcessor({
    exporter: wrapped,
    maxQueueSize: t.queueSize,
    maxExportBatchSize: Math.min(t.batchSize, t.queueSize),
    scheduledDelayMillis: t.scheduledDelay,
    exportTimeoutMillis: config.exportTimeout,
  });
  return new GatedSpanProcessor(batch, gate, drops);
}

/** BatchLogRecordProcessor -> OTLP gRPC, behind a counted bounded queue. */
export function createLogPipeline(endpoint: string | undefined, config: TelemetryConfig, drops: DropCounter): LogRecordProcessor {
  const l = config.logs;
  const gate: Gate = { pending: 0, max: l.queueSize };
  const inner: LogRecordExporter = new OTLPLogExporter(exporterOptions(endpoint, config));
  const wrapped: LogRecordExporter = {
    export: countingExport<ReadableLogRecord[]>('logs', gate, drops, (r) => r.length, (r, cb) => inner.export(r, cb)),
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
  const batch = new BatchLogRecordProcessor({
    exporter: wrapped,
    maxQueueSize: l.queueSize,
    maxExportBatchSize: Math.min(l.batchSize, l.queueSize),
    scheduledDelayMillis: l.scheduledDelay,
    exportTimeoutMillis: config.exportTimeout,
  });
  return new GatedLogProcessor(batch, gate, drops);
}

/** The OTLP metric exporter, counting the data points of failed exports. */
export function createMetricExporter(endpoint: string | undefined, config: TelemetryConfig, drops: DropCounter): PushMetricExporter {
  const inner = new OTLPMetricExporter(exporterOptions(endpoint, config));
  const wrapped: PushMetricExporter = {
    export: countingExport<ResourceMetrics>('metrics', undefined, drops, countDataPoints, (m, cb) => inner.export(m, cb)),
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
 * The SDK's diagnostics and its global error handler go to one throttled warning: during
 * an outage every export fails the same way, and one line per interval says as much.
 */
export function routeSdkErrors(throttle: LogThrottle): void {
  const warn = (message: string, ...args: unknown[]) =>
    throttle.warn({ event_type: 'telemetry_error', detail: args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ') }, `telemetry: ${message}`);
  const noop = () => {};
  diag.setLogger({ error: warn, warn, info: noop, debug: noop, verbose: noop }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  setGlobalErrorHandler((err) => warn('an exporter or processor failed', err));
}
