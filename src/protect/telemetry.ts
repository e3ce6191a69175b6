import type { Attributes } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { TelemetryProtection } from '../telemetry/index.ts';
import type { Protector } from './engine.ts';

export type { TelemetryProtection } from '../telemetry/index.ts';

/** The access record's ids that the sidecar wrote itself, in hex (request_id may come from the client: it is scanned). */
const ACCESS_IDS: ReadonlySet<string> = new Set(['trace_id', 'span_id']);

/**
 * The telemetry pipeline's protection (TelemetryProtection, declared by telemetry): spans,
 * log records and metric data points just before they are encoded for export, whatever
 * code set their attributes (ours today, captured payloads or a library's tomorrow), and
 * the access log before its stdout line is built.
 */
export function createTelemetryProtection(p: Protector): TelemetryProtection {
  const attrs = (a: Attributes | undefined) => (a === undefined ? a : p.attributes(a));
  return {
    spans: (spans) => mapChanged(spans, (s) => protectSpan(p, s, attrs)),
    logs: (entries) =>
      mapChanged(entries, (e) => {
        if (e.protected === true) return e;
        const attributes = p.attributes(e.attributes);
        const body = p.recurring(e.body);
        return attributes === e.attributes && body === e.body ? e : { ...e, attributes, body };
      }),
    metrics(rm) {
      for (const sm of rm.scopeMetrics) {
        for (const m of sm.metrics) {
          const points = m.dataPoints as Array<{ attributes: Attributes }>;
          // The reader builds the data points of each collection for this export: rewriting them in place is safe.
          for (const dp of points) dp.attributes = p.attributes(dp.attributes);
        }
      }
      return rm;
    },
    agent: { attribute: (k, v) => p.attribute(k, v), recurring: (s) => p.recurring(s) },
    accessLog(log) {
      if (log === undefined) return undefined;
      return {
        enabled: (level) => log.enabled(level),
        write(level, record, message, traceId, spanId, traceFlags) {
          log.write(level, p.attributes(record, ACCESS_IDS) as typeof record, p.recurring(message), traceId, spanId, traceFlags);
        },
      };
    },
  };
}

function protectSpan(p: Protector, s: ReadableSpan, attrs: (a: Attributes | undefined) => Attributes | undefined): ReadableSpan {
  const name = p.recurring(s.name);
  const attributes = p.attributes(s.attributes);
  const events = mapChanged(s.events, (e) => {
    const a = attrs(e.attributes);
    const n = p.recurring(e.name);
    return a === e.attributes && n === e.name ? e : { ...e, name: n, attributes: a };
  });
  const links = mapChanged(s.links, (l) => {
    const a = attrs(l.attributes);
    return a === l.attributes ? l : { ...l, attributes: a };
  });
  const message = s.status.message === undefined ? undefined : p.recurring(s.status.message);
  const status = message === s.status.message ? s.status : { ...s.status, message };
  if (name === s.name && attributes === s.attributes && events === s.events && links === s.links && status === s.status) return s;
  return {
    name,
    kind: s.kind,
    spanContext: () => s.spanContext(),
    parentSpanContext: s.parentSpanContext,
    startTime: s.startTime,
    endTime: s.endTime,
    status,
    attributes,
    links,
    events,
    duration: s.duration,
    ended: s.ended,
    resource: s.resource,
    instrumentationScope: s.instrumentationScope,
    droppedAttributesCount: s.droppedAttributesCount,
    droppedEventsCount: s.droppedEventsCount,
    droppedLinksCount: s.droppedLinksCount,
  };
}

/** Maps an array, returning the same array when no element changed. */
function mapChanged<T>(items: T[], fn: (item: T) => T): T[] {
  let out: T[] | undefined;
  for (let i = 0; i < items.length; i++) {
    const w = fn(items[i]!);
    if (w !== items[i]) (out ??= items.slice())[i] = w;
  }
  return out ?? items;
}
