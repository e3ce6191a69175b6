import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { SpanKind } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { MalformedOtlp, rewriteExport } from '../src/telemetry/relay/index.ts';
import { startRelayThread, type RelayThreadData } from '../src/telemetry/relay/thread.ts';
import type { AddressInfo } from 'node:net';
import { validateConfig } from '../src/config/index.ts';
import { createLogger } from '../src/log/index.ts';
import { createProtection } from '../src/protect/index.ts';
import { createTelemetry } from '../src/telemetry/index.ts';
import { captureLogs, startSidecar } from './helpers.ts';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.ts';

// The OTLP relay with real parts: the agent is the OpenTelemetry JS SDK with its gRPC
// exporters (and an OTLP/HTTP protobuf request as the SDK serializes it), the collector is the
// gRPC receiver that decodes what arrives with the official protobuf definitions.

const require = createRequire(import.meta.url);
const root = require('otlp-proto-root/build/src/generated/root.js') as {
  opentelemetry: {
    proto: {
      collector: Record<
        'trace' | 'metrics' | 'logs',
        { v1: Record<string, { encode(o: unknown): { finish(): Uint8Array }; decode(b: Uint8Array): unknown; toObject(m: unknown, o?: unknown): any }> }
      >;
    };
  };
};
const pb = root.opentelemetry.proto.collector;

let receiver: OtlpReceiver;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;
let grpcUrl: string;
let httpUrl: string;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  sidecar = await startSidecar({
    telemetry: {
      endpoint: receiver.endpoint,
      serviceName: 'relay-sidecar',
      resourceAttributes: { 'k8s.pod.name': 'agent-pod-1', 'k8s.namespace.name': 'agents' },
      traces: { scheduledDelay: '50ms' },
      metrics: { otlp: false },
      logs: { otlp: false },
      relay: { enabled: true, grpc: '127.0.0.1:0', http: '127.0.0.1:0', maxMessageBytes: '64kb' },
    },
  });
  grpcUrl = `http://127.0.0.1:${sidecar.listeners['relay-grpc']!.port}`;
  httpUrl = `http://127.0.0.1:${sidecar.listeners['relay-http']!.port}`;
});

afterAll(async () => {
  await sidecar?.close();
  await receiver?.stop();
});

/** The agent: the SDK's tracer provider exporting over gRPC to the relay. */
function agentTracer(url: string, resource: Record<string, string>) {
  const provider = new TracerProvider({
    resource: resourceFromAttributes(resource),
    spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url }) })],
  });
  return provider;
}

/** One span of `service` named `name`, posted as OTLP/HTTP protobuf to the relay at `origin`; the status it answers. */
async function postSpan(origin: string, service: string, name: string): Promise<number> {
  const Req = pb.trace.v1.ExportTraceServiceRequest!;
  const body = Buffer.from(
    Req.encode({
      resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] }, scopeSpans: [{ spans: [{ name }] }] }],
    }).finish(),
  );
  const res = await request(`${origin}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
  await res.body.dump();
  return res.statusCode;
}

describe('OTLP relay', () => {
  it("forwards the agent's spans over gRPC, protected, with the sidecar's place attributes where the agent's resource lacks them", async () => {
    const provider = agentTracer(grpcUrl, { 'service.name': 'support-agent', 'k8s.namespace.name': 'agent-own-ns' });
    const tracer = provider.getTracer('agent-code');
    const span = tracer.startSpan('lookup bob@example.com', {
      kind: SpanKind.INTERNAL,
      attributes: { 'customer.email': 'alice@example.com', 'app.step': 'lookup', password: 'hunter2', 'app.count': 3, 'app.tags': ['a', 'carol@example.com'] },
    });
    span.addEvent('found', { 'match.owner': 'dave@example.com' });
    span.end();
    await provider.forceFlush();
    const [s] = await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.resource['service.name'] === 'support-agent'));
    const got = receiver.spans().find((x) => x.resource['service.name'] === 'support-agent')!;
    expect(s).toBeDefined();
    expect(got.name).toBe('lookup [REDACTED:email]');
    expect(got.attributes['customer.email']).toBe('[REDACTED:email]');
    expect(got.attributes['app.step']).toBe('lookup');
    expect(got.attributes['app.count']).toBe(3);
    expect(got.attributes.password).not.toBe('hunter2');
    expect(got.attributes['app.tags']).toEqual(['a', '[REDACTED:email]']);
    expect(got.events[0]!.attributes['match.owner']).toBe('[REDACTED:email]');
    // The sidecar's place attributes: added where absent, never over the agent's own.
    expect(got.resource['k8s.pod.name']).toBe('agent-pod-1');
    expect(got.resource['k8s.namespace.name']).toBe('agent-own-ns');
    expect(got.scope.name).toBe('agent-code');
    expect(JSON.stringify(receiver.spans())).not.toContain('example.com');
    await provider.shutdown();
  });

  it('with telemetry.relay.thread, relays from a worker thread all the same: the rule set rebuilt there protects', async () => {
    const local = await startSidecar({
      telemetry: {
        endpoint: receiver.endpoint,
        serviceName: 'relay-sidecar-thread',
        metrics: { otlp: false },
        logs: { otlp: false },
        relay: { enabled: true, grpc: false, http: '127.0.0.1:0', thread: true },
      },
    });
    try {
      const res = await postSpan(`http://127.0.0.1:${local.listeners['relay-http']!.port}`, 'thread-agent', 'to henry@example.com');
      expect(res).toBe(200);
      await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.resource['service.name'] === 'thread-agent'));
      expect(receiver.spans().find((x) => x.resource['service.name'] === 'thread-agent')!.name).toBe('to [REDACTED:email]');
    } finally {
      await local.close();
    }
  });

  it('a worker thread that cannot start is reported, and what was handed to it is refused, never lost silently', async () => {
    const exits: Error[] = [];
    const thread = startRelayThread({ code: "throw new Error('no rule set')" }, {} as RelayThreadData, { dropped() {} }, (err) => exits.push(err));
    await expect(thread.ready).rejects.toThrow(/no rule set/);
    await expect(thread.accept('traces', Buffer.from([0x0a, 0x00]))).rejects.toThrow(/no rule set/);
    expect(exits).toHaveLength(1);
    await thread.shutdown();
  });

  it('a worker thread that cannot start: requests are relayed on the proxying thread instead, and the log says why', async () => {
    const logs = captureLogs();
    const config = validateConfig({
      telemetry: {
        endpoint: receiver.endpoint,
        serviceName: 'relay-fallback',
        metrics: { otlp: false },
        logs: { otlp: false },
        relay: { enabled: true, grpc: false, http: '127.0.0.1:0', thread: true },
      },
    });
    const protection = await createProtection(config, createLogger('silent', logs.stream));
    const telemetry = createTelemetry(config, createLogger('info', logs.stream), {
      protect: protection.telemetryExport,
      relayWorker: { code: "throw new Error('no rule set here')" },
    });
    const server = telemetry.relayReceivers[0]!.server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      expect(await postSpan(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'fallback-agent', 'to ivy@example.com')).toBe(200);
      await receiver.waitFor(receiver.spans, (all) => all.some((x) => x.resource['service.name'] === 'fallback-agent'));
      expect(receiver.spans().find((x) => x.resource['service.name'] === 'fallback-agent')!.name).toBe('to [REDACTED:email]');
      expect(logs.lines.find((l) => l.event_type === 'relay_thread_failed')?.message).toMatch(/no rule set here.*goes on in the proxying thread/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await telemetry.shutdown();
      protection.close();
    }
  });

  it("forwards the agent's log records over gRPC, a string body and a map body's entries protected", async () => {
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({ 'service.name': 'log-agent' }),
      processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: grpcUrl }) })],
    });
    const log = provider.getLogger('agent-logs');
    log.emit({ body: 'mail from erin@example.com', attributes: { 'user.email': 'frank@example.com' } });
    log.emit({ body: { note: 'grace@example.com', n: 2 } as never });
    await provider.forceFlush();
    const logs = await receiver.waitFor(receiver.logs, (all) => all.filter((x) => x.resource['service.name'] === 'log-agent').length >= 2);
    const mine = logs.filter((x) => x.resource['service.name'] === 'log-agent');
    expect(mine[0]!.body).toBe('mail from [REDACTED:email]');
    expect(mine[0]!.attributes['user.email']).toBe('[REDACTED:email]');
    expect(mine[1]!.body).toEqual({ note: '[REDACTED:email]', n: 2 });
    expect(mine[0]!.resource['k8s.pod.name']).toBe('agent-pod-1');
    await provider.shutdown();
  });

  it('takes OTLP/HTTP protobuf, gzip or not, and answers with an empty ExportTraceServiceResponse', async () => {
    const Req = pb.trace.v1.ExportTraceServiceRequest!;
    const body = Req.encode({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'http-agent' } }] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: Buffer.alloc(16, 1),
                  spanId: Buffer.alloc(8, 2),
                  name: 'call',
                  kind: 1,
                  startTimeUnixNano: 1,
                  endTimeUnixNano: 2,
                  attributes: [{ key: 'who', value: { stringValue: 'heidi@example.com' } }],
                },
              ],
            },
          ],
        },
      ],
    }).finish();
    for (const gzip of [false, true]) {
      const res = await request(`${httpUrl}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf', ...(gzip ? { 'content-encoding': 'gzip' } : {}) },
        body: gzip ? gzipSync(body) : Buffer.from(body),
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/x-protobuf');
      expect((await res.body.arrayBuffer()).byteLength).toBe(0);
    }
    const spans = await receiver.waitFor(receiver.spans, (all) => all.filter((x) => x.resource['service.name'] === 'http-agent').length >= 2);
    for (const s of spans.filter((x) => x.resource['service.name'] === 'http-agent')) {
      expect(s.attributes.who).toBe('[REDACTED:email]');
      expect(s.resource['k8s.pod.name']).toBe('agent-pod-1');
    }
  });

  it('refuses what it cannot relay with a stable code, and forwards nothing of it', async () => {
    const before = receiver.requests.traces;
    const bad = await request(`${httpUrl}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body: Buffer.from([0x0a, 0x05, 0x01]),
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['x-sidecar-error']).toBe('SIDECAR_RELAY_MALFORMED');
    expect(Buffer.from(await bad.body.arrayBuffer()).toString()).toContain('SIDECAR_RELAY_MALFORMED');
    const json = await request(`${httpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(json.statusCode).toBe(415);
    expect(json.headers['x-sidecar-error']).toBe('SIDECAR_RELAY_UNSUPPORTED_MEDIA_TYPE');
    await json.body.dump();
    const big = await request(`${httpUrl}/v1/logs`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.alloc(65 * 1024) });
    expect(big.statusCode).toBe(413);
    expect(big.headers['x-sidecar-error']).toBe('SIDECAR_RELAY_TOO_LARGE');
    await big.body.dump();
    const other = await request(`${httpUrl}/v1/profiles`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: '' });
    expect(other.statusCode).toBe(404);
    expect(other.headers['x-sidecar-error']).toBe('SIDECAR_RELAY_NOT_FOUND');
    await other.body.dump();

    // gRPC: a malformed message gets INVALID_ARGUMENT with the code in grpc-message.
    const session = http2.connect(grpcUrl);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      'content-type': 'application/grpc',
    });
    const frame = Buffer.from([0, 0, 0, 0, 3, 0x0a, 0x05, 0x01]);
    stream.end(frame);
    const [headers] = (await new Promise((resolve) => stream.on('response', (h) => resolve([h])))) as [http2.IncomingHttpHeaders];
    stream.resume();
    expect(headers['grpc-status']).toBe('3');
    expect(decodeURIComponent(String(headers['grpc-message']))).toContain('SIDECAR_RELAY_MALFORMED');
    session.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.requests.traces).toBe(before);
  });
});

describe('OTLP rewrite', () => {
  const protect = {
    attribute: (k: string, v: unknown) => (k === 'drop.me' ? undefined : typeof v === 'string' && v.includes('@') ? 'X' : v) as never,
    recurring: (s: string) => (s.includes('@') ? 'X' : s),
  };

  it('copies what it does not protect byte for byte, unknown fields included, and counts the items', () => {
    const Req = pb.metrics.v1.ExportMetricsServiceRequest!;
    const input = Req.encode({
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'm' } }] },
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'a',
                  sum: { dataPoints: [{ asInt: 3, attributes: [{ key: 'k', value: { stringValue: 'v' } }] }, { asDouble: 1.5 }], isMonotonic: true },
                },
                {
                  name: 'h',
                  histogram: {
                    dataPoints: [
                      { count: 2, sum: 3, bucketCounts: [1, 1], explicitBounds: [1], attributes: [{ key: 'u', value: { stringValue: 'ivan@example.com' } }] },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    }).finish();
    // An unknown field (number 99, a varint) at the end of the request survives.
    const withUnknown = Buffer.concat([input, Buffer.from([0x98, 0x06, 0x2a])]);
    const out = rewriteExport('metrics', withUnknown, protect, {});
    expect(out.items).toBe(3);
    expect(Buffer.from(out.bytes).subarray(-3)).toEqual(Buffer.from([0x98, 0x06, 0x2a]));
    const decoded = Req.toObject(Req.decode(out.bytes), { longs: Number }) as any;
    const [sum, hist] = decoded.resourceMetrics[0].scopeMetrics[0].metrics;
    expect(sum.sum.dataPoints[0].attributes[0].value.stringValue).toBe('v');
    expect(sum.sum.dataPoints[0].asInt).toBe(3);
    expect(hist.histogram.dataPoints[0].attributes[0].value.stringValue).toBe('X');
    expect(hist.histogram.dataPoints[0].bucketCounts).toEqual([1, 1]);
    // Nothing to protect and no resource attributes to add: the same bytes.
    const clean = Req.encode({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'a', gauge: { dataPoints: [{ asDouble: 2 }] } }] }] }] }).finish();
    expect(Buffer.from(rewriteExport('metrics', clean, protect, {}).bytes)).toEqual(Buffer.from(clean));
  });

  it('drops an attribute a field rule drops, and adds a resource where the agent sent none', () => {
    const Req = pb.trace.v1.ExportTraceServiceRequest!;
    const input = Req.encode({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                {
                  name: 's',
                  attributes: [
                    { key: 'drop.me', value: { stringValue: 'x' } },
                    { key: 'keep', value: { intValue: -5 } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    }).finish();
    const out = Req.toObject(Req.decode(rewriteExport('traces', input, protect, { 'k8s.pod.name': 'p' }).bytes), { longs: Number }) as any;
    const span = out.resourceSpans[0].scopeSpans[0].spans[0];
    expect(span.attributes.map((a: any) => a.key)).toEqual(['keep']);
    expect(span.attributes[0].value.intValue).toBe(-5);
    expect(out.resourceSpans[0].resource.attributes).toEqual([{ key: 'k8s.pod.name', value: { stringValue: 'p' } }]);
  });

  it('reads keys and values beyond ASCII as UTF-8: unchanged ones are copied, protected ones rewritten', () => {
    const Req = pb.trace.v1.ExportTraceServiceRequest!;
    const input = Req.encode({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                {
                  name: 'résumé 🧾',
                  attributes: [
                    { key: 'größe', value: { stringValue: 'Zürich 東京' } },
                    { key: 'kontakt', value: { stringValue: 'josé@例え.jp' } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    }).finish();
    const out = Req.toObject(Req.decode(rewriteExport('traces', input, protect, {}).bytes)) as any;
    const span = out.resourceSpans[0].scopeSpans[0].spans[0];
    expect(span.name).toBe('résumé 🧾');
    expect(span.attributes).toEqual([
      { key: 'größe', value: { stringValue: 'Zürich 東京' } },
      { key: 'kontakt', value: { stringValue: 'X' } },
    ]);
  });

  it('refuses bytes that are not a request: a length past the end, a wrong wire type, a truncated varint, an attribute without a key, invalid UTF-8', () => {
    for (const bad of [
      [0x0a, 0x05, 0x01],
      [0x0b],
      [0x0a, 0x80],
      [0x0a, 0x08, 0x12, 0x06, 0x12, 0x04, 0x4a, 0x02, 0x12, 0x00],
      [0x0a, 0x07, 0x12, 0x05, 0x12, 0x03, 0x2a, 0x01, 0xff],
    ]) {
      expect(() => rewriteExport('traces', Buffer.from(bad), protect, {}), JSON.stringify(bad)).toThrow(MalformedOtlp);
    }
  });
});

describe('OTLP relay under pressure', () => {
  it('never holds the agent: past telemetry.relay.queueBytes a request is answered at once with partial_success, and its spans are counted as dropped', async () => {
    const slow = await startOtlpReceiver();
    slow.setDelay(3000);
    const s = await startSidecar({
      telemetry: {
        endpoint: slow.endpoint,
        metrics: { otlp: false },
        logs: { otlp: false },
        relay: { enabled: true, grpc: false, http: '127.0.0.1:0', queueBytes: '64kb' },
      },
    });
    try {
      const Req = pb.trace.v1.ExportTraceServiceRequest!;
      const Res = pb.trace.v1.ExportTraceServiceResponse!;
      const body = Buffer.from(
        Req.encode({
          resourceSpans: [
            {
              scopeSpans: [
                {
                  spans: [
                    {
                      traceId: Buffer.alloc(16, 3),
                      spanId: Buffer.alloc(8, 4),
                      name: 'big',
                      attributes: [{ key: 'blob', value: { stringValue: 'x'.repeat(20_000) } }],
                    },
                  ],
                },
              ],
            },
          ],
        }).finish(),
      );
      const url = `http://127.0.0.1:${s.listeners['relay-http']!.port}/v1/traces`;
      const started = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
          expect(res.statusCode).toBe(200);
          return Res.toObject(Res.decode(new Uint8Array(await res.body.arrayBuffer())), { longs: Number }) as {
            partialSuccess?: { rejectedSpans?: number; errorMessage?: string };
          };
        }),
      );
      // Answered while the collector still sits on the first export.
      expect(Date.now() - started).toBeLessThan(2500);
      const rejected = answers.filter((a) => a.partialSuccess?.rejectedSpans === 1);
      expect(rejected.length).toBeGreaterThanOrEqual(2);
      expect(rejected[0]!.partialSuccess!.errorMessage).toContain('telemetry.relay.queueBytes');
      const metrics = await (await request(`${s.adminUrl}/metrics`)).body.text();
      expect(metrics).toMatch(new RegExp(`agent_telemetry_dropped_total\\{[^}]*reason="relay_queue_full"[^}]*\\} ${rejected.length}\\b`));
    } finally {
      await s.close();
      await slow.stop();
    }
  });
});

describe('OTLP relay configuration', () => {
  it('asked for with telemetry off, stops the start with SIDECAR_CONFIG_INVALID; on by default only under run --', async () => {
    await expect(startSidecar({ telemetry: { enabled: false, relay: { enabled: true } } })).rejects.toMatchObject({
      code: 'SIDECAR_CONFIG_INVALID',
      message: expect.stringContaining('telemetry.relay.enabled needs telemetry on'),
    });
    const { relayAddresses } = await import('../src/telemetry/relay/index.ts');
    const defaults = { maxMessageBytes: 1024, queueBytes: 65536 };
    expect(relayAddresses(defaults, true, false)).toBeUndefined();
    expect(relayAddresses(defaults, true, true)).toEqual({ grpc: '127.0.0.1:0', http: '127.0.0.1:0' });
    expect(relayAddresses({ ...defaults, enabled: true }, true, false)).toEqual({ grpc: '127.0.0.1:4317', http: '127.0.0.1:4318' });
    expect(relayAddresses({ ...defaults, enabled: false }, true, true)).toBeUndefined();
    expect(relayAddresses({ ...defaults, enabled: true, grpc: false }, true, false)).toEqual({ http: '127.0.0.1:4318' });
    // Under run -- with telemetry off, the relay is simply not there.
    expect(relayAddresses(defaults, false, true)).toBeUndefined();
  });
});
