import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Context, type Tracer } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TracerProvider, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { SpansEncoder } from '../src/telemetry/otlp/spans.ts';
import { RequestTracer } from '../src/telemetry/tracer.ts';
import { decodeTraceRequest, type DecodedSpan } from './otlp-receiver.ts';

const resource = resourceFromAttributes({ 'service.name': 'agent', 'service.instance.id': 'i-1' });

function collector(): { processor: SpanProcessor; ended: ReadableSpan[] } {
  const ended: ReadableSpan[] = [];
  return { ended, processor: { onStart() {}, onEnd: (s) => ended.push(s), forceFlush: async () => {}, shutdown: async () => {} } };
}

const remote = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
  traceState: new TraceState('vendor=abc'),
});

/** What the observer does with one request: a SERVER span, a CLIENT child, an event, statuses. */
function request(tracer: Tracer, parent: Context): void {
  const server = tracer.startSpan('GET', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'client.address': '127.0.0.1' } }, parent);
  server.addEvent('auth.decision', { 'auth.outcome': 'allowed', roles: ['analyst'] });
  const client = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'server.port': 8080 } }, trace.setSpan(parent, server));
  client.setAttribute('http.response.status_code', 503);
  client.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream answered 503' });
  client.end();
  server.updateName('GET /api/v1/agents/{agent_id}');
  server.setAttributes({ 'http.route': '/api/v1/agents/{agent_id}', 'http.response.status_code': 503 });
  server.setStatus({ code: SpanStatusCode.ERROR });
  server.end();
  server.end();
}

/** Ids and times differ between two runs; everything else must not. */
function shape(spans: DecodedSpan[]) {
  return spans.map(({ traceId: _t, spanId: _s, parentSpanId, startTimeUnixNano: _a, endTimeUnixNano: _b, events, ...rest }) => ({
    ...rest,
    parent: parentSpanId === '' ? 'none' : parentSpanId === '00f067aa0ba902b7' ? 'remote' : 'local',
    events: events.map(({ timeUnixNano: _e, ...e }) => e),
  }));
}

describe('RequestTracer: the request path spans, recorded without the SDK tracer', () => {
  it('records what the SDK tracer records for the same calls, byte for byte once ids and times are set aside', () => {
    const ours = collector();
    const sdk = collector();
    request(new RequestTracer({ sampler: new AlwaysOnSampler(), resource, scope: { name: 'agent-sidecar' }, processor: ours.processor }), remote);
    request(new TracerProvider({ resource, spanProcessors: [sdk.processor] }).getTracer('agent-sidecar'), remote);
    expect(ours.ended).toHaveLength(2);
    const decoded = decodeTraceRequest(new SpansEncoder().encode(ours.ended));
    expect(shape(decoded)).toEqual(shape(decodeTraceRequest(new SpansEncoder().encode(sdk.ended))));
    // The SDK's own serializer reads our spans the same way.
    expect(decoded).toEqual(decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(ours.ended)!));
    const [client, server] = decoded;
    expect(server!.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(client!.parentSpanId).toBe(server!.spanId);
    expect(server!.traceState).toBe('vendor=abc');
    expect(server!.spanId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('starts a trace of its own without a parent, with wall-clock times a few microseconds apart', () => {
    const c = collector();
    const before = BigInt(Date.now()) * 1_000_000n;
    request(new RequestTracer({ sampler: new AlwaysOnSampler(), resource, scope: { name: 'agent-sidecar' }, processor: c.processor }), ROOT_CONTEXT);
    const after = BigInt(Date.now() + 1) * 1_000_000n;
    const [client, server] = decodeTraceRequest(new SpansEncoder().encode(c.ended));
    expect(server!.parentSpanId).toBe('');
    expect(server!.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(client!.traceId).toBe(server!.traceId);
    for (const s of [client!, server!]) {
      expect(BigInt(s.startTimeUnixNano)).toBeGreaterThanOrEqual(before - 1_000_000n);
      expect(BigInt(s.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(s.startTimeUnixNano));
      expect(BigInt(s.endTimeUnixNano)).toBeLessThanOrEqual(after);
    }
  });

  it('follows the sampler: a span not sampled still carries its context to the upstream, and is never exported', () => {
    const c = collector();
    const off = new RequestTracer({ sampler: new AlwaysOffSampler(), resource, scope: { name: 'agent-sidecar' }, processor: c.processor });
    const span = off.startSpan('GET', { kind: SpanKind.SERVER }, remote);
    expect(span.isRecording()).toBe(false);
    expect(span.spanContext()).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', traceFlags: TraceFlags.NONE });
    span.end();
    const parentBased = new RequestTracer({
      sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
      resource,
      scope: { name: 'agent-sidecar' },
      processor: c.processor,
    });
    const unsampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: TraceFlags.NONE, isRemote: true });
    parentBased.startSpan('GET', {}, unsampled).end();
    expect(c.ended).toHaveLength(0);
    parentBased.startSpan('GET', {}, ROOT_CONTEXT).end();
    expect(c.ended).toHaveLength(1);
  });

  it('keeps the SDK limits: 128 attributes, then counted as dropped; nothing changes after end', () => {
    const c = collector();
    const span = new RequestTracer({ sampler: new AlwaysOnSampler(), resource, scope: { name: 'agent-sidecar' }, processor: c.processor }).startSpan('x');
    for (let i = 0; i < 130; i++) span.setAttribute(`k${i}`, i);
    span.setAttribute('k0', 'again');
    span.end();
    span.setAttribute('late', true);
    span.updateName('renamed');
    const [ended] = c.ended;
    expect(Object.keys(ended!.attributes)).toHaveLength(128);
    expect(ended!.attributes.k0).toBe('again');
    expect(ended!.droppedAttributesCount).toBe(2);
    expect(ended!.name).toBe('x');
  });
});
