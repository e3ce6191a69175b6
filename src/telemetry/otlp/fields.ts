// The field numbers of the opentelemetry-proto messages the OTLP encoders write, by message,
// as the .proto files name them (opentelemetry/proto/{common,resource,trace,logs,collector}/v1).
// Field numbers are the wire format: they never change for a released message.

/** ExportTraceServiceRequest, ExportLogsServiceRequest. */
export const EXPORT_REQUEST = { resourceSpans: 1, resourceLogs: 1 } as const;
export const RESOURCE_SPANS = { resource: 1, scopeSpans: 2, schemaUrl: 3 } as const;
export const RESOURCE_LOGS = { resource: 1, scopeLogs: 2, schemaUrl: 3 } as const;
export const SCOPE_SPANS = { scope: 1, spans: 2, schemaUrl: 3 } as const;
export const SCOPE_LOGS = { scope: 1, logRecords: 2, schemaUrl: 3 } as const;
export const RESOURCE = { attributes: 1 } as const;
export const INSTRUMENTATION_SCOPE = { name: 1, version: 2 } as const;

export const SPAN = {
  traceId: 1,
  spanId: 2,
  traceState: 3,
  parentSpanId: 4,
  name: 5,
  kind: 6,
  startTimeUnixNano: 7,
  endTimeUnixNano: 8,
  attributes: 9,
  droppedAttributesCount: 10,
  events: 11,
  droppedEventsCount: 12,
  links: 13,
  droppedLinksCount: 14,
  status: 15,
  flags: 16,
} as const;
export const SPAN_EVENT = { timeUnixNano: 1, name: 2, attributes: 3, droppedAttributesCount: 4 } as const;
export const SPAN_LINK = { traceId: 1, spanId: 2, traceState: 3, attributes: 4, droppedAttributesCount: 5, flags: 6 } as const;
export const STATUS = { message: 2, code: 3 } as const;

export const LOG_RECORD = {
  timeUnixNano: 1,
  severityNumber: 2,
  severityText: 3,
  body: 5,
  attributes: 6,
  flags: 8,
  traceId: 9,
  spanId: 10,
  observedTimeUnixNano: 11,
  eventName: 12,
} as const;

export const ANY_VALUE = { stringValue: 1, boolValue: 2, intValue: 3, doubleValue: 4, arrayValue: 5 } as const;
export const ARRAY_VALUE = { values: 1 } as const;
export const KEY_VALUE = { key: 1, value: 2 } as const;
