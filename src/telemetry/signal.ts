import type { LogEntry } from './otlp/logs.ts';

/** The three OTLP signals. */
export type Signal = 'traces' | 'metrics' | 'logs';

/** Counts what never reached the collector: agent_telemetry_dropped_total{signal, reason}. */
export interface DropCounter {
  dropped(signal: Signal, reason: 'queue_full' | 'export_failed', count: number): void;
}

/** Where OTLP log records go: a bounded batch queue that never blocks the caller. */
export interface LogSink {
  push(entry: LogEntry): void;
}
