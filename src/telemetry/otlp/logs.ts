import type { Attributes } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { ProtoWriter } from './writer.ts';

/** One log record as the request path hands it over: plain values, encoded later in a batch. */
export interface LogEntry {
  /** Unix time in nanoseconds. */
  timeNs: bigint;
  severityNumber: number;
  severityText: string;
  eventName: string;
  body: string;
  attributes: Attributes;
  /** Hex; empty when the record belongs to no span. */
  traceId: string;
  spanId: string;
  /** W3C trace flags of that span (1: sampled). */
  traceFlags: number;
  /** Already protected when it was written (access records): export protection passes it as it is. */
  protected?: true;
}

let nsMs = 0;
let lastNs = 0n;
/** Unix time in nanoseconds at millisecond precision: one BigInt per millisecond, not per record. */
export function nowNs(): bigint {
  const now = Date.now();
  if (now !== nsMs) {
    nsMs = now;
    lastNs = BigInt(now) * 1_000_000n;
  }
  return lastNs;
}

/**
 * Encodes batches of LogEntry as opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest,
 * with the resource and scope encoded once. Cheaper than building the SDK's log records and
 * having them transformed, which matters for a record on every request.
 */
export class LogsEncoder {
  readonly #w = new ProtoWriter();
  readonly #resource: Uint8Array;
  readonly #scope: Uint8Array;

  constructor(resource: Resource, scopeName: string, scopeVersion: string) {
    const w = new ProtoWriter(4096);
    const r = w.begin(1); // ResourceLogs.resource
    w.attributes(1, resource.attributes);
    w.end(r);
    this.#resource = w.finish();
    w.reset();
    const s = w.begin(1); // ScopeLogs.scope
    w.string(1, scopeName);
    w.string(2, scopeVersion);
    w.end(s);
    this.#scope = w.finish();
  }

  encode(entries: readonly LogEntry[]): Uint8Array {
    const w = this.#w;
    w.reset();
    const rl = w.begin(1); // ExportLogsServiceRequest.resource_logs
    w.raw(this.#resource);
    const sl = w.begin(2); // ResourceLogs.scope_logs
    w.raw(this.#scope);
    for (const e of entries) {
      const lr = w.begin(2); // ScopeLogs.log_records
      w.fixed64(1, e.timeNs); // time_unix_nano
      w.fixed64(11, e.timeNs); // observed_time_unix_nano
      w.uint(2, e.severityNumber);
      w.string(3, e.severityText);
      const body = w.begin(5);
      w.string(1, e.body);
      w.end(body);
      w.attributes(6, e.attributes);
      if (e.traceId !== '') {
        w.fixed32(8, e.traceFlags);
        w.hex(9, e.traceId);
        w.hex(10, e.spanId);
      }
      w.string(12, e.eventName);
      w.end(lr);
    }
    w.end(sl);
    w.end(rl);
    return w.finish();
  }
}
