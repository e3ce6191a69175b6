/** The three OTLP signals. */
export type Signal = 'traces' | 'metrics' | 'logs';

/** Counts what never reached the collector: agent_telemetry_dropped_total{signal, reason}. */
export interface DropCounter {
  dropped(signal: Signal, reason: 'queue_full' | 'export_failed', count: number): void;
}
