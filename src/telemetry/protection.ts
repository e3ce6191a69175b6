import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { AccessLog } from './access-log.ts';
import type { LogEntry } from './otlp/logs.ts';
import type { RelayProtector } from './relay/rewrite.ts';

/**
 * What the export pipelines call, declared here so that telemetry needs no data protection
 * of its own (src/protect implements it): spans, log records and metric data points just
 * before they are encoded for export, the last point inside the process, whatever code set
 * their attributes. That runs in the batchers, off the request path; unchanged items are
 * passed as they are. The access log, whose stdout line is written by hand, is protected
 * before its line is built.
 */
export interface TelemetryProtection {
  spans(spans: ReadableSpan[]): ReadableSpan[];
  logs(entries: LogEntry[]): LogEntry[];
  metrics(metrics: ResourceMetrics): ResourceMetrics;
  accessLog(log: AccessLog | undefined): AccessLog | undefined;
  /** The agent's own telemetry through the relay: its attributes and text, with the same rule set. */
  readonly agent: RelayProtector;
}
