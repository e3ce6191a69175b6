// Per-request cost of each telemetry piece, in isolation (no sockets, no collector):
// recording (metrics, spans, the access record) and OTLP encoding, with the SDK's own
// log path and pino measured in the same run as baselines.
// npm run bench:micro:telemetry
import { IncomingMessage, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { SeverityNumber } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { LoggerProvider, type LogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { TracerProvider, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { validateConfig } from '../../src/config/index.ts';
import { createProtection } from '../../src/protect/index.ts';
import type { RequestContext } from '../../src/core/index.ts';
import { componentLogger, createLogger } from '../../src/log/index.ts';
import { createAccessLog } from '../../src/telemetry/access-log.ts';
import { createHistograms, createInstruments } from '../../src/telemetry/instruments.ts';
import { createTelemetryObserver } from '../../src/telemetry/observer.ts';
import { RequestTracer } from '../../src/telemetry/tracer.ts';
import { LogsEncoder, type LogEntry } from '../../src/telemetry/otlp/logs.ts';
import { SpansEncoder } from '../../src/telemetry/otlp/spans.ts';
import { createSessionTracker } from '../../src/telemetry/sessions.ts';
import { resolveSettings } from '../../src/telemetry/settings.ts';
import { version } from '../../src/version.ts';

const N = 140_000;
const BATCH = 512;

/** Keeps up to four batches of what ends, as a batch processor would until its next export. */
function keeper<T>() {
  let items: T[] = [];
  return {
    push(item: T) {
      if (items.length < BATCH * 4) items.push(item);
    },
    take(): T[] {
      const t = items;
      items = [];
      return t;
    },
  };
}
const spans = keeper<ReadableSpan>();
const entries = keeper<LogEntry>();
const sdkRecords = keeper<ReadableLogRecord>();
const spanSink: SpanProcessor = { onStart() {}, onEnd: (s) => spans.push(s), forceFlush: async () => {}, shutdown: async () => {} };
const logSink: LogRecordProcessor = { onEmit: (r) => sdkRecords.push(r as unknown as ReadableLogRecord), forceFlush: async () => {}, shutdown: async () => {} };

const config = validateConfig({ telemetry: { enabled: true } });
const settings = resolveSettings(config.telemetry, {});
const meter = new MeterProvider({ resource: settings.resource }).getMeter('bench');
const instruments = createInstruments(meter, createHistograms());
const sdkTracer = new TracerProvider({ resource: settings.resource, sampler: settings.sampler, spanProcessors: [spanSink] }).getTracer('bench');
const tracer = new RequestTracer({ sampler: settings.sampler, resource: settings.resource, scope: { name: 'bench' }, processor: spanSink });
const otelLogger = new LoggerProvider({ resource: settings.resource, processors: [logSink] }).getLogger('bench');
// Like the sidecar's own destination (pino's sonic-boom), a write is a call that returns.
const devNull = { write: () => true } as unknown as NodeJS.WritableStream;
const logger = createLogger('info', devNull);

function observer(parts: { traces?: boolean; sdkTraces?: boolean; otlpLogs?: boolean; stdout?: boolean }) {
  return createTelemetryObserver({
    instruments,
    agentType: 'bench',
    tracer: parts.sdkTraces ? sdkTracer : parts.traces ? tracer : undefined,
    propagator: new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    trustIncoming: undefined,
    recordUser: false,
    upstream: new URL('http://127.0.0.1:8080'),
    scheme: 'http',
    sessions: createSessionTracker(60_000, 1000),
    sessionHeader: 'x-session-id',
    access: createAccessLog(parts.stdout ? logger : undefined, parts.otlpLogs ? entries : undefined),
  });
}

const socket = new Socket();
const res = { statusCode: 200, headersSent: true } as unknown as ServerResponse;
function context(i: number): RequestContext {
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/api/v1/agents/42';
  req.headers = { host: 'sidecar.local', 'user-agent': 'bench/1.0', 'x-session-id': `s${i % 64}` };
  return {
    req,
    res,
    socket,
    requestId: `r${i}`,
    startedAt: process.hrtime.bigint(),
    target: '/api/v1/agents/42',
    forwarded: { for: '127.0.0.1', proto: 'http', host: 'sidecar.local', clientAddress: '127.0.0.1', trusted: false },
    upstreamHeaders: new Map(),
    strippedHeaders: new Set(),
    responseHeaders: new Map(),
    bytesIn: 0,
    bytesOut: 3,
    route: '/api/v1/agents/{agent_id}',
  };
}

const ROUNDS = 7;
/**
 * µs per call of `fn`: the fastest of ROUNDS rounds of n/ROUNDS calls, after a warm-up
 * round; the minimum is the figure least disturbed by whatever else the machine runs.
 */
function time(fn: (i: number) => void, n = N): number {
  const per = Math.max(1, Math.floor(n / ROUNDS));
  let best = Infinity;
  for (let r = 0; r <= ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < per; i++) fn(i);
    const us = Number(process.hrtime.bigint() - start) / per / 1000;
    if (r > 0) best = Math.min(best, us);
  }
  return best;
}

/** µs per request of the observer's four calls. */
function record(parts: Parameters<typeof observer>[0]): number {
  const o = observer(parts);
  return time((i) => {
    const ctx = context(i);
    o.requestStart(ctx);
    o.upstreamStart?.(ctx);
    o.upstreamEnd?.(ctx, 200, undefined);
    o.requestEnd(ctx);
  });
}

/** µs per item to encode full batches. */
function encode<T>(items: T[], serialize: (batch: T[]) => Uint8Array | undefined): number {
  const batch = items.slice(0, BATCH);
  return time(() => serialize(batch), Math.ceil((N * 2) / BATCH)) / batch.length;
}

const contextOnly = time(context);
const metrics = record({});
const withSdkTraces = record({ sdkTraces: true });
spans.take();
const withTraces = record({ traces: true });
const spanBatch = spans.take();
const withOtlpLogs = record({ otlpLogs: true });
const entryBatch = entries.take();
const withStdout = record({ stdout: true });
const all = record({ traces: true, otlpLogs: true, stdout: true });
const spanEncoder = new SpansEncoder();
const spanEncode = encode(spanBatch, (b) => spanEncoder.encode(b));
const sdkSpanEncode = encode(spanBatch, (b) => ProtobufTraceSerializer.serializeRequest(b));
const encoder = new LogsEncoder(settings.resource, 'agent-sidecar', version);
const logEncode = encode(entryBatch, (b) => encoder.encode(b));

// Baselines: the same access record through pino, and through the SDK's log records and transformer.
const sample = entryBatch[0]!;
const access = componentLogger(logger, 'agent-sidecar.access');
const pinoLine = time(() => access.info({ ...sample.attributes }, sample.body));
const sdkEmit = time(() =>
  otelLogger.emit({ severityNumber: SeverityNumber.INFO, severityText: 'INFO', eventName: 'access', body: sample.body, attributes: { ...sample.attributes } }),
);
const sdkEncode = encode(sdkRecords.take(), (b) => ProtobufLogsSerializer.serializeRequest(b));

// Telemetry protection with the default rules, as the sidecar runs it: the access record
// before it is written, the request's two spans before they are encoded.
const protection = (await createProtection(config, logger)).telemetryExport!;
const protectedLog = protection.accessLog(createAccessLog(undefined, { push() {} }, true))!;
const spanPairs = spanBatch.length / 2;
const protectRequest = time((i) => {
  const k = (i % spanPairs) * 2;
  // Ids differ on every request, as they do in the sidecar.
  protectedLog.write(
    'info',
    { ...sample.attributes, request_id: `${i}-4bf92f3577b34da6a3ce929d0e0e4736`, trace_id: `${i}a3ce929d0e0e4736`, span_id: `${i}b7ad6b7169203331` },
    sample.body,
    sample.traceId,
    sample.spanId,
    sample.traceFlags,
  );
  protection.spans(spanBatch.slice(k, k + 2));
});

const f = (n: number) => `${n.toFixed(2).padStart(6)} µs`;
const ratio = (ours: number, base: number) => `${(ours / base).toFixed(2)}x`;
const out = [
  `telemetry per request (${N.toLocaleString('en')} requests; the fake request context, ${f(contextOnly).trim()}, subtracted)`,
  `  metrics (always on)                 ${f(metrics - contextOnly)}`,
  `  + 2 spans recorded                  ${f(withTraces - metrics)}`,
  `  + OTLP access record, recorded      ${f(withOtlpLogs - metrics)}`,
  `  + stdout access line                ${f(withStdout - metrics)}`,
  `  all recorded                        ${f(all - contextOnly)}`,
  `  OTLP encoding, 2 spans              ${f(spanEncode * 2)}`,
  `  OTLP encoding, 1 access record      ${f(logEncode)}`,
  `  all, recorded and encoded           ${f(all - contextOnly + spanEncode * 2 + logEncode)}`,
  `  protection, default rules: access record + 2 spans  ${f(protectRequest)}`,
  `baselines, same record:`,
  `  stdout line through pino            ${f(pinoLine)}   ours ${ratio(withStdout - metrics, pinoLine)}`,
  `  SDK log record, emitted + encoded   ${f(sdkEmit + sdkEncode)}   ours ${ratio(withOtlpLogs - metrics + logEncode, sdkEmit + sdkEncode)}`,
  `  SDK serializer, 2 spans             ${f(sdkSpanEncode * 2)}   ours ${ratio(spanEncode, sdkSpanEncode)}`,
  `  SDK tracer, 2 spans recorded        ${f(withSdkTraces - metrics)}   ours ${ratio(withTraces - metrics, withSdkTraces - metrics)}`,
];
process.stdout.write(`${out.join('\n')}\n`);
