import type { Attributes } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { ProtoWriter } from './writer.ts';
import { ANY_VALUE, EXPORT_REQUEST, INSTRUMENTATION_SCOPE, LOG_RECORD, RESOURCE, RESOURCE_LOGS, SCOPE_LOGS } from './fields.ts';

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
    const r = w.begin(RESOURCE_LOGS.resource);
    w.attributes(RESOURCE.attributes, resource.attributes);
    w.end(r);
    this.#resource = w.finish();
    w.reset();
    const s = w.begin(SCOPE_LOGS.scope);
    w.string(INSTRUMENTATION_SCOPE.name, scopeName);
    w.string(INSTRUMENTATION_SCOPE.version, scopeVersion);
    w.end(s);
    this.#scope = w.finish();
  }

  encode(entries: readonly LogEntry[]): Uint8Array {
    const w = this.#w;
    w.reset();
    const rl = w.begin(EXPORT_REQUEST.resourceLogs);
    w.raw(this.#resource);
    const sl = w.begin(RESOURCE_LOGS.scopeLogs);
    w.raw(this.#scope);
    for (const e of entries) {
      const lr = w.begin(SCOPE_LOGS.logRecords);
      w.fixed64(LOG_RECORD.timeUnixNano, e.timeNs);
      w.fixed64(LOG_RECORD.observedTimeUnixNano, e.timeNs);
      w.uint(LOG_RECORD.severityNumber, e.severityNumber);
      w.string(LOG_RECORD.severityText, e.severityText);
      const body = w.begin(LOG_RECORD.body);
      w.string(ANY_VALUE.stringValue, e.body);
      w.end(body);
      w.attributes(LOG_RECORD.attributes, e.attributes);
      if (e.traceId !== '') {
        w.fixed32(LOG_RECORD.flags, e.traceFlags);
        w.hex(LOG_RECORD.traceId, e.traceId);
        w.hex(LOG_RECORD.spanId, e.spanId);
      }
      w.string(LOG_RECORD.eventName, e.eventName);
      w.end(lr);
    }
    w.end(sl);
    w.end(rl);
    return w.finish();
  }
}
