import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate, type OTLPGRPCExporterConfigNode } from '@opentelemetry/otlp-grpc-exporter-base';
import { ProtobufLogsSerializer, ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { BatchTransport } from './batcher.ts';

interface Service {
  env: 'LOGS' | 'TRACES' | 'METRICS';
  item: 'log' | 'span' | 'metric_data_point';
  component: string;
  name: string;
  path: string;
  response: { deserializeResponse(data: Uint8Array): unknown };
}

const SERVICES: Record<'logs' | 'traces' | 'metrics', Service> = {
  logs: {
    env: 'LOGS',
    item: 'log',
    component: 'otlp_grpc_log_exporter',
    name: 'LogsExportService',
    path: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
    response: ProtobufLogsSerializer,
  },
  metrics: {
    env: 'METRICS',
    item: 'metric_data_point',
    component: 'otlp_grpc_metric_exporter',
    name: 'MetricsExportService',
    path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
    response: ProtobufMetricsSerializer,
  },
  traces: {
    env: 'TRACES',
    item: 'span',
    component: 'otlp_grpc_span_exporter',
    name: 'TraceExportService',
    path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    response: ProtobufTraceSerializer,
  },
};

/**
 * The OTLP gRPC exporter's own transport (connection, TLS, metadata, timeouts, compression,
 * the OTEL_EXPORTER_OTLP_* variables, partial-success handling), fed with bytes we encode:
 * the SDK's exporters differ from this only in how they serialize.
 */
export function createGrpcTransport<T>(
  signal: 'logs' | 'traces' | 'metrics',
  options: OTLPGRPCExporterConfigNode,
  encode: (items: T[]) => Uint8Array,
): BatchTransport<T> {
  const s = SERVICES[signal];
  const serializer = {
    serializeRequest: encode,
    deserializeResponse: (data: Uint8Array) => s.response.deserializeResponse(data),
  };
  const delegate = createOtlpGrpcExportDelegate(
    convertLegacyOtlpGrpcOptions(options, s.env),
    serializer,
    s.component,
    { name: s.item, countItems: (items: T[]) => items.length },
    undefined,
    s.name,
    s.path,
  );
  return {
    export: (items, done) => delegate.export(items, done),
    forceFlush: () => delegate.forceFlush(),
    shutdown: () => delegate.shutdown(),
  };
}
