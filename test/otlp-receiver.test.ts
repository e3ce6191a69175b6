import * as grpc from '@grpc/grpc-js';
import { ROOT_CONTEXT, SeverityNumber, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { ExportResultCode, loggingErrorHandler, setGlobalErrorHandler, type ExportResult } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { plainValue, startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.ts';

const resource = resourceFromAttributes({ 'service.name': 'otlp-receiver-test', 'service.version': '1.2.3' });

let receiver: OtlpReceiver;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  receiver.setFailure(undefined);
  receiver.setDelay(0);
  receiver.clear();
});
afterAll(() => receiver.stop());

function traceExporter(options: { timeoutMillis?: number } = {}): OTLPTraceExporter {
  const exporter = new OTLPTraceExporter({ url: receiver.endpoint, credentials: grpc.credentials.createInsecure(), ...options });
  cleanups.push(() => exporter.shutdown());
  return exporter;
}

/** Finished SDK spans, made by a real tracer, to hand to an exporter by hand. */
function finishedSpans(name: string): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
  provider.getTracer('probe').startSpan(name).end();
  return memory.getFinishedSpans();
}

const exportSpans = (exporter: OTLPTraceExporter, spans: ReadableSpan[]) => new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));

describe('OTLP/gRPC receiver against the real SDK exporters', () => {
  it('decodes a SERVER span and its CLIENT child with ids, attributes, events and status', async () => {
    const provider = new TracerProvider({ resource, spanProcessors: [new BatchSpanProcessor({ exporter: traceExporter() })] });
    cleanups.push(() => provider.shutdown());
    const tracer = provider.getTracer('sidecar-ingress', '0.1.0');

    const server = tracer.startSpan('GET /orders', {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': 'GET',
        'http.response.status_code': 200,
        'sidecar.ratio': 0.25,
        'sidecar.cached': false,
        'sidecar.scopes': ['read', 'write'],
      },
    });
    server.addEvent('token.verified', { 'enduser.id': 'agent-7' });
    const client = tracer.startSpan('upstream GET', { kind: SpanKind.CLIENT, attributes: { 'server.port': 8080 } }, trace.setSpan(ROOT_CONTEXT, server));
    client.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream timeout' });
    client.end();
    server.end();
    await provider.forceFlush();

    const spans = await receiver.waitFor(receiver.spans, (s) => s.length >= 2);
    const parent = spans.find((s) => s.name === 'GET /orders')!;
    const child = spans.find((s) => s.name === 'upstream GET')!;

    expect(parent).toMatchObject({
      traceId: server.spanContext().traceId,
      spanId: server.spanContext().spanId,
      parentSpanId: '',
      kind: 2,
      kindName: 'SERVER',
      attributes: {
        'http.request.method': 'GET',
        'http.response.status_code': 200,
        'sidecar.ratio': 0.25,
        'sidecar.cached': false,
        'sidecar.scopes': ['read', 'write'],
      },
      events: [{ name: 'token.verified', attributes: { 'enduser.id': 'agent-7' } }],
      status: { code: 0, codeName: 'UNSET', message: '' },
      resource: { 'service.name': 'otlp-receiver-test', 'service.version': '1.2.3' },
      scope: { name: 'sidecar-ingress', version: '0.1.0' },
    });
    expect(child).toMatchObject({
      traceId: parent.traceId,
      spanId: client.spanContext().spanId,
      parentSpanId: parent.spanId,
      kindName: 'CLIENT',
      attributes: { 'server.port': 8080 },
      status: { code: 2, codeName: 'ERROR', message: 'upstream timeout' },
    });
    expect(parent.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(parent.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(BigInt(parent.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(parent.startTimeUnixNano));
    expect(BigInt(parent.startTimeUnixNano)).toBeGreaterThan(1_600_000_000_000_000_000n);
    expect(receiver.requests.traces).toBeGreaterThanOrEqual(1);
  });

  it('decodes a counter and a histogram with their values, buckets and temporality', async () => {
    const exporter = new OTLPMetricExporter({ url: receiver.endpoint, credentials: grpc.credentials.createInsecure() });
    const provider = new MeterProvider({
      resource,
      readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })],
    });
    cleanups.push(() => provider.shutdown());
    const meter = provider.getMeter('sidecar-metrics', '0.1.0');

    const requests = meter.createCounter('sidecar.requests', { description: 'Requests handled', unit: '{request}' });
    requests.add(3, { route: '/orders' });
    requests.add(4, { route: '/orders' });
    requests.add(1, { route: '/health' });
    const duration = meter.createHistogram('sidecar.duration', { unit: 'ms', advice: { explicitBucketBoundaries: [10, 100, 1000] } });
    for (const ms of [5, 15, 250]) duration.record(ms, { route: '/orders' });
    await provider.forceFlush();

    const points = await receiver.waitFor(receiver.metrics, (m) => m.some((p) => p.name === 'sidecar.duration'));
    const counted = points.filter((p) => p.name === 'sidecar.requests');
    expect(counted.find((p) => p.attributes.route === '/orders')).toMatchObject({
      type: 'sum',
      description: 'Requests handled',
      unit: '{request}',
      isMonotonic: true,
      temporality: 'CUMULATIVE',
      value: 7,
      resource: { 'service.name': 'otlp-receiver-test' },
      scope: { name: 'sidecar-metrics', version: '0.1.0' },
    });
    expect(counted.find((p) => p.attributes.route === '/health')?.value).toBe(1);
    expect(points.find((p) => p.name === 'sidecar.duration')).toMatchObject({
      type: 'histogram',
      unit: 'ms',
      temporality: 'CUMULATIVE',
      attributes: { route: '/orders' },
      count: 3,
      sum: 270,
      min: 5,
      max: 250,
      explicitBounds: [10, 100, 1000],
      bucketCounts: [1, 1, 1, 0],
    });
  });

  it('decodes log records with body, severity, attributes and the active span ids', async () => {
    const exporter = new OTLPLogExporter({ url: receiver.endpoint, credentials: grpc.credentials.createInsecure() });
    const provider = new LoggerProvider({ resource, processors: [new SimpleLogRecordProcessor({ exporter })] });
    cleanups.push(() => provider.shutdown());
    const logger = provider.getLogger('sidecar-access', '0.1.0');
    const span = finishedSpans('request')[0]!;

    logger.emit({
      severityNumber: SeverityNumber.WARN,
      severityText: 'WARN',
      body: 'token expired',
      attributes: { 'sidecar.error.code': 'SIDECAR_TOKEN_EXPIRED', 'http.response.status_code': 401 },
      context: trace.setSpanContext(ROOT_CONTEXT, span.spanContext()),
    });
    logger.emit({ severityNumber: SeverityNumber.INFO, body: { route: '/orders', latency: 12.5, retries: [1, 2], ok: true } });
    await provider.forceFlush();

    const logs = await receiver.waitFor(receiver.logs, (l) => l.length >= 2);
    expect(logs[0]).toMatchObject({
      body: 'token expired',
      severityNumber: 13,
      severityText: 'WARN',
      attributes: { 'sidecar.error.code': 'SIDECAR_TOKEN_EXPIRED', 'http.response.status_code': 401 },
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
      resource: { 'service.name': 'otlp-receiver-test' },
      scope: { name: 'sidecar-access', version: '0.1.0' },
    });
    expect(BigInt(logs[0]!.observedTimeUnixNano)).toBeGreaterThan(0n);
    expect(logs[1]).toMatchObject({ body: { route: '/orders', latency: 12.5, retries: [1, 2], ok: true }, severityNumber: 9, traceId: '', spanId: '' });
  });

  it('refuses exports with the configured gRPC status, and accepts them again once cleared', async () => {
    const exporter = traceExporter();
    receiver.setFailure(grpc.status.UNAVAILABLE);

    const refused = await exportSpans(exporter, finishedSpans('refused'));
    expect(refused.code).toBe(ExportResultCode.FAILED);
    expect((refused.error as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    expect(receiver.requests.traces).toBe(1);
    expect(receiver.spans()).toEqual([]);

    receiver.setFailure(undefined);
    const accepted = await exportSpans(exporter, finishedSpans('accepted'));
    expect(accepted).toEqual({ code: ExportResultCode.SUCCESS });
    expect(receiver.spans().map((s) => s.name)).toEqual(['accepted']);
  });

  it('makes TracerProvider.forceFlush reject (with an array of errors) when the collector refuses', async () => {
    receiver.setFailure(grpc.status.RESOURCE_EXHAUSTED);
    const provider = new TracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor({ exporter: traceExporter() })] });
    cleanups.push(() => provider.shutdown());
    provider.getTracer('t').startSpan('dropped').end();
    await expect(provider.forceFlush()).rejects.toEqual([expect.objectContaining({ code: grpc.status.RESOURCE_EXHAUSTED })]);
    expect(receiver.spans()).toEqual([]);
  });

  it('routes a refused metrics export to the global error handler; MeterProvider.forceFlush still resolves', async () => {
    const errors: unknown[] = [];
    setGlobalErrorHandler((error) => errors.push(error));
    cleanups.push(async () => setGlobalErrorHandler(loggingErrorHandler()));
    receiver.setFailure(grpc.status.UNAVAILABLE);
    const exporter = new OTLPMetricExporter({ url: receiver.endpoint, credentials: grpc.credentials.createInsecure() });
    const provider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })] });
    cleanups.push(() => provider.shutdown());
    provider.getMeter('m').createCounter('refused').add(1);

    await provider.forceFlush();
    expect(receiver.requests.metrics).toBe(1);
    expect(receiver.metrics()).toEqual([]);
    expect(String(errors[0])).toContain('metrics export failed');
  });

  it('lets a slow collector run the exporter into its deadline', async () => {
    const exporter = traceExporter({ timeoutMillis: 200 });
    receiver.setDelay(1_000);
    const result = await exportSpans(exporter, finishedSpans('slow'));
    expect(result.code).toBe(ExportResultCode.FAILED);
    expect((result.error as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(receiver.spans()).toEqual([]);
  });

  it('restarts on the same port and the exporter reconnects', async () => {
    const exporter = traceExporter({ timeoutMillis: 2_000 });
    expect((await exportSpans(exporter, finishedSpans('before'))).code).toBe(ExportResultCode.SUCCESS);
    const port = receiver.port;

    await receiver.stop();
    const down = await exportSpans(exporter, finishedSpans('while down'));
    expect(down.code).toBe(ExportResultCode.FAILED);
    expect((down.error as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);

    await receiver.start();
    expect(receiver.port).toBe(port);
    // grpc-js reconnects with backoff (1 s initial); an export inside that window fails fast.
    let result: ExportResult = { code: ExportResultCode.FAILED };
    for (let attempt = 0; attempt < 40 && result.code !== ExportResultCode.SUCCESS; attempt++) {
      result = await exportSpans(exporter, finishedSpans('after'));
      if (result.code !== ExportResultCode.SUCCESS) await new Promise((r) => setTimeout(r, 250));
    }
    expect(result.code).toBe(ExportResultCode.SUCCESS);
    expect(receiver.spans().map((s) => s.name)).toEqual(['before', 'after']);
  });

  it('converts AnyValue to plain JS, keeping 64-bit ints beyond 2^53 exact', () => {
    expect(plainValue({ value: 'intValue', intValue: '42' })).toBe(42);
    expect(plainValue({ value: 'intValue', intValue: '9007199254740993' })).toBe(9007199254740993n);
    expect(
      plainValue({
        value: 'kvlistValue',
        kvlistValue: { values: [{ key: 'a', value: { value: 'arrayValue', arrayValue: { values: [{ value: 'boolValue', boolValue: true }] } } }] },
      }),
    ).toEqual({ a: [true] });
    expect(plainValue(null)).toBeUndefined();
  });
});
