import type { LogEntry } from './otlp/logs.ts';

/** The three OTLP signals. */
export type Signal = 'traces' | 'metrics' | 'logs';

/** Why telemetry was dropped: the sidecar's own (queue_full, export_failed) or the agent's, through the relay (relay_*). */
export type DropReason = 'queue_full' | 'export_failed' | 'relay_queue_full' | 'relay_export_failed';

/** Counts what never reached the collector: agent_telemetry_dropped_total{signal, reason}. */
export interface DropCounter {
  dropped(signal: Signal, reason: DropReason, count: number): void;
}

/** Where OTLP log records go: a bounded batch queue that never blocks the caller. */
export interface LogSink {
  push(entry: LogEntry): void;
}
