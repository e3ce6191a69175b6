import { TraceFlags } from '@opentelemetry/api';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { LogEntry } from './logs.ts';

/** The log record the SDK's serializer takes (the SDK's ReadableLogRecord). */
type SdkLogRecord = Parameters<typeof ProtobufLogsSerializer.serializeRequest>[0][number];

/**
 * The OpenTelemetry SDK's own protobuf serializers, in place of SpansEncoder and LogsEncoder
 * (telemetry.encoder: sdk). Slower, and meant for troubleshooting: when a collector refuses or
 * misreads an export, switching to the SDK's bytes tells whether the sidecar's encoder is the
 * cause. The bytes of spans are the same either way (otlp-encoding tests compare them).
 */
export function sdkSpansEncoding(): (spans: ReadableSpan[]) => Uint8Array {
  return (spans) => ProtobufTraceSerializer.serializeRequest(spans) ?? new Uint8Array(0);
}

export function sdkLogsEncoding(resource: Resource, scopeName: string, scopeVersion: string): (entries: LogEntry[]) => Uint8Array {
  const scope = { name: scopeName, version: scopeVersion };
  return (entries) => ProtobufLogsSerializer.serializeRequest(entries.map((e) => toSdkRecord(e, resource, scope))) ?? new Uint8Array(0);
}

function toSdkRecord(e: LogEntry, resource: Resource, scope: SdkLogRecord['instrumentationScope']): SdkLogRecord {
  const time: [number, number] = [Number(e.timeNs / 1_000_000_000n), Number(e.timeNs % 1_000_000_000n)];
  return {
    hrTime: time,
    hrTimeObserved: time,
    severityNumber: e.severityNumber,
    severityText: e.severityText,
    body: e.body,
    eventName: e.eventName,
    attributes: e.attributes,
    droppedAttributesCount: 0,
    resource,
    instrumentationScope: scope,
    ...(e.traceId === '' ? {} : { spanContext: { traceId: e.traceId, spanId: e.spanId, traceFlags: e.traceFlags as TraceFlags } }),
  };
}
