import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { LogsEncoder, type LogEntry } from '../src/telemetry/otlp/logs.ts';
import { sdkLogsEncoding, sdkSpansEncoding } from '../src/telemetry/otlp/sdk.ts';
import { SpansEncoder } from '../src/telemetry/otlp/spans.ts';
import { ProtoWriter } from '../src/telemetry/otlp/writer.ts';
import { countItems, decodeLogsRequest, decodeTraceRequest } from './otlp-receiver.ts';

const resource = resourceFromAttributes({ 'service.name': 'agent', 'service.instance.id': 'i-1', 'k8s.pod.name': 'pod-ü' });

function entry(attributes: LogEntry['attributes'], over: Partial<LogEntry> = {}): LogEntry {
  return {
    timeNs: 1_795_000_000_123_000_000n,
    severityNumber: 9,
    severityText: 'INFO',
    eventName: 'access',
    body: 'GET /api/v1/agents 200',
    attributes,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: 1,
    ...over,
  };
}

describe('LogsEncoder: ExportLogsServiceRequest bytes a protobuf decoder reads back', () => {
  const encoder = new LogsEncoder(resource, 'agent-sidecar', '1.2.3');

  it('encodes the envelope, ids, times, severity and body', () => {
    const [r] = decodeLogsRequest(encoder.encode([entry({ status_code: 200 })]));
    expect(r).toMatchObject({
      body: 'GET /api/v1/agents 200',
      severityNumber: 9,
      severityText: 'INFO',
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      flags: 1,
      timeUnixNano: '1795000000123000000',
      observedTimeUnixNano: '1795000000123000000',
      resource: { 'service.name': 'agent', 'service.instance.id': 'i-1', 'k8s.pod.name': 'pod-ü' },
      scope: { name: 'agent-sidecar', version: '1.2.3' },
    });
  });

  it('leaves the ids out of a record outside any span', () => {
    const [r] = decodeLogsRequest(encoder.encode([entry({}, { traceId: '', spanId: '', traceFlags: 0 })]));
    expect(r).toMatchObject({ traceId: '', spanId: '', flags: 0 });
  });

  it('round-trips every kind of attribute value, short and long, ASCII and not', () => {
    const long = 'x'.repeat(200);
    const huge = 'y'.repeat(20_000);
    const attributes = {
      short: 'GET',
      empty: '',
      unicode: 'naïve – 東京 🚀',
      long,
      huge,
      zero: 0,
      int: 200,
      big: 2 ** 40,
      bigger: Number.MAX_SAFE_INTEGER,
      negative: -7,
      double: 1.25,
      bool: true,
      no: false,
      list: ['a', 'b'],
      ключ: 'value with a non-ASCII key',
      [`k${'e'.repeat(118)}`]: 'v',
    };
    const [r] = decodeLogsRequest(encoder.encode([entry(attributes)]));
    expect(r!.attributes).toEqual(attributes);
  });

  it('encodes batches of thousands of records, and one encoder is reusable', () => {
    const many = Array.from({ length: 3000 }, (_, i) => entry({ request_id: `r-${i}`, path: `/p/${'z'.repeat(i % 300)}`, status_code: 200 + (i % 5) }));
    const first = decodeLogsRequest(encoder.encode(many));
    expect(first).toHaveLength(3000);
    expect(first.map((r) => r.attributes.request_id)).toEqual(many.map((e) => e.attributes.request_id));
    expect(first[299]!.attributes).toEqual(many[299]!.attributes);
    const again = decodeLogsRequest(encoder.encode([entry({ only: 'one' })]));
    expect(again).toHaveLength(1);
    expect(again[0]!.attributes).toEqual({ only: 'one' });
  });
});

describe('telemetry.encoder sdk: the SDK serializers, for troubleshooting, decode to what the sidecar encoders write', () => {
  it('log records: the same records, field for field, in and outside a span', () => {
    const entries = [
      entry({ status_code: 200, route: '/api/v1/agents/{agent_id}', unicode: 'naïve – 東京', list: ['a', 'b'], double: 1.25, ok: true }),
      entry({ only: 'one' }, { traceId: '', spanId: '', traceFlags: 0, severityNumber: 13, severityText: 'WARN', eventName: 'audit' }),
    ];
    const ours = decodeLogsRequest(new LogsEncoder(resource, 'agent-sidecar', '1.2.3').encode(entries));
    const sdk = decodeLogsRequest(sdkLogsEncoding(resource, 'agent-sidecar', '1.2.3')(entries));
    expect(sdk).toHaveLength(2);
    expect(sdk).toEqual(ours);
  });

  it("spans: the bytes are the SDK serializer's own", () => {
    const provider = new TracerProvider({ resource });
    const tracer = provider.getTracer('agent-sidecar', '1.2.3');
    const span = tracer.startSpan('GET', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET' } });
    span.end();
    const spans = [span as unknown as ReadableSpan];
    expect(Buffer.from(sdkSpansEncoding()(spans))).toEqual(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!));
    expect(decodeTraceRequest(sdkSpansEncoding()(spans))).toEqual(decodeTraceRequest(new SpansEncoder().encode(spans)));
  });
});

describe('SpansEncoder: the same spans as the SDK serializer, read back by a protobuf decoder', () => {
  function finishedSpans(): ReadableSpan[] {
    const ended: ReadableSpan[] = [];
    const provider = new TracerProvider({
      resource,
      spanProcessors: [{ onStart() {}, onEnd: (s) => ended.push(s), forceFlush: async () => {}, shutdown: async () => {} }],
    });
    const tracer = provider.getTracer('agent-sidecar', '1.2.3');
    const other = provider.getTracer('another-scope');
    const remote = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
      traceState: new TraceState('vendor=abc,other=1'),
    });
    const server = tracer.startSpan(
      'GET /api/v1/agents/{agent_id}',
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': 'GET', 'http.response.status_code': 503, 'url.path': `/p/${'ü'.repeat(70)}`, 'server.port': 8080 },
        links: [{ context: { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 0 }, attributes: { reason: 'retry' } }],
      },
      remote,
    );
    server.addEvent('auth.decision', { 'auth.outcome': 'allowed', latency: 0.25, roles: ['analyst', 'user'] });
    const client = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'error.type': 'SIDECAR_UPSTREAM_TIMEOUT' } }, trace.setSpan(remote, server));
    client.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream timed out' });
    client.end();
    server.setStatus({ code: SpanStatusCode.ERROR });
    server.end();
    other.startSpan('internal').end();
    return ended;
  }

  it('decodes to exactly what the SDK serializer encodes', () => {
    const spans = finishedSpans();
    const ours = decodeTraceRequest(new SpansEncoder().encode(spans));
    const sdk = decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(spans)!);
    expect(ours).toHaveLength(3);
    expect(ours).toEqual(sdk);
    const server = ours.find((s) => s.kindName === 'SERVER')!;
    expect(server).toMatchObject({ parentSpanId: '00f067aa0ba902b7', traceState: 'vendor=abc,other=1', status: { codeName: 'ERROR' } });
    expect(server.events[0]!.attributes).toEqual({ 'auth.outcome': 'allowed', latency: 0.25, roles: ['analyst', 'user'] });
    expect(ours.find((s) => s.kindName === 'CLIENT')!.parentSpanId).toBe(server.spanId);
  });

  it('encodes each span at once (encodeOne) and a batch of them (encodeEncoded) to the same request as encode', () => {
    const spans = finishedSpans();
    const eager = new SpansEncoder();
    const batch = eager.encodeEncoded(spans.map((s) => eager.encodeOne(s)));
    expect(decodeTraceRequest(batch)).toEqual(decodeTraceRequest(new SpansEncoder().encode(spans)));
    // Thousands of spans fill many slabs; every span's bytes stay its own.
    const many = Array.from({ length: 3000 }, (_, i) => spans[i % spans.length]!);
    const encoded = many.map((s) => eager.encodeOne(s));
    expect(decodeTraceRequest(eager.encodeEncoded(encoded))).toEqual(decodeTraceRequest(new SpansEncoder().encode(many)));
  });

  it('writes timestamps to the nanosecond', () => {
    const spans = finishedSpans();
    const [ours] = decodeTraceRequest(new SpansEncoder().encode(spans.slice(0, 1)));
    const [sec, nanos] = spans[0]!.startTime;
    expect(ours!.startTimeUnixNano).toBe(String(BigInt(sec) * 1_000_000_000n + BigInt(nanos)));
    // Exact over the whole unsigned 32-bit range of seconds, without BigInt on the way.
    const w = new ProtoWriter(64);
    for (const [s, n] of [
      [0, 0],
      [1, 1],
      [65535, 999_999_999],
      [65536, 0],
      [1_795_000_000, 123_456_789],
      [2 ** 32 - 1, 999_999_999],
    ] as const) {
      w.reset();
      w.hrTime(7, [s, n]);
      expect(Buffer.from(w.finish()).readBigUInt64LE(1)).toBe(BigInt(s) * 1_000_000_000n + BigInt(n));
    }
  });
});

describe('countItems: spans and log records counted on the wire, without decoding', () => {
  it('counts records per resource and those of resources without the mark', () => {
    const marked = new LogsEncoder(resourceFromAttributes({ 'bench.target': 'sidecar-telemetry' }), 's', '1');
    const other = new LogsEncoder(resourceFromAttributes({ 'service.name': 'someone-else' }), 's', '1');
    const e = entry({ status_code: 200, path: '/p'.repeat(100) });
    const mark = Buffer.from('sidecar-telemetry');
    expect(countItems(Buffer.from(marked.encode([e, e, e])), mark)).toEqual({ items: 3, foreign: 0 });
    expect(countItems(Buffer.from(other.encode([e, e])), mark)).toEqual({ items: 2, foreign: 2 });
    expect(countItems(Buffer.alloc(0), mark)).toEqual({ items: 0, foreign: 0 });
  });

  it('counts spans across scopes', () => {
    const spans = new SpansEncoder().encode(finishedSpansForCount());
    expect(countItems(Buffer.from(spans), Buffer.from('agent'))).toEqual({ items: 2, foreign: 0 });
  });
});

function finishedSpansForCount(): ReadableSpan[] {
  const ended: ReadableSpan[] = [];
  const provider = new TracerProvider({
    resource,
    spanProcessors: [{ onStart() {}, onEnd: (s) => ended.push(s), forceFlush: async () => {}, shutdown: async () => {} }],
  });
  provider.getTracer('a').startSpan('one').end();
  provider.getTracer('b').startSpan('two').end();
  return ended;
}
