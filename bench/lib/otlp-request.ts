// An instrumented agent's trace export request, as its SDK encodes it: `per` spans, each with a
// dozen attributes, one of them an e-mail address, so that the relay's protection has work to do.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const otlpRoot = require('otlp-proto-root/build/src/generated/root.js') as {
  opentelemetry: {
    proto: {
      collector: {
        trace: { v1: { ExportTraceServiceRequest: { encode(o: unknown): { finish(): Uint8Array }; decode(b: Uint8Array): unknown } } };
      };
    };
  };
};

const str = (key: string, value: string) => ({ key, value: { stringValue: value } });

/** The spans of one request: the same 64 trace ids and 100 span ids in every request. */
function spansOf(per: number) {
  const now = BigInt(Date.now()) * 1_000_000n;
  return Array.from({ length: per }, (_, i) => ({
    traceId: Buffer.from(`${String(i % 64).padStart(2, '0')}`.repeat(16), 'hex'),
    spanId: Buffer.from(`${String(i % 100).padStart(2, '0')}`.repeat(8), 'hex'),
    name: i % 2 === 0 ? 'GET /orders/{id}' : 'chat claude-sonnet-4-6',
    kind: 2,
    startTimeUnixNano: now,
    endTimeUnixNano: now + 1_500_000n,
    attributes: [
      str('http.request.method', 'GET'),
      str('url.path', `/orders/${1000 + i}`),
      str('server.address', 'orders.internal'),
      { key: 'server.port', value: { intValue: 8080 } },
      { key: 'http.response.status_code', value: { intValue: 200 } },
      str('user_agent.original', 'agent/1.0'),
      str('gen_ai.request.model', 'claude-sonnet-4-6'),
      str('customer.email', `user${i}@example.com`),
      str('app.step', 'lookup'),
      str('app.region', 'eu-west-1'),
      { key: 'app.retry', value: { boolValue: false } },
      { key: 'app.score', value: { doubleValue: 0.75 } },
    ],
  }));
}

function encode(spans: ReturnType<typeof spansOf>): Buffer {
  return Buffer.from(
    otlpRoot.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.encode({
      resourceSpans: [
        {
          // Not the sidecar's mark: the receiver counts these apart (as foreign), so the relayed spans can be told from the sidecar's own.
          resource: { attributes: [str('service.name', 'bench-agent')] },
          scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http' }, spans }],
        },
      ],
    }).finish(),
  );
}

/** One request of `per` spans (the same 64 trace ids in every request). */
export function traceExportRequest(per: number): Buffer {
  return encode(spansOf(per));
}

/**
 * `count` requests of `per` spans each, whose spans belong to traces of `perTrace` spans with
 * trace ids new to every request: traffic as a collector that routes or samples by trace id
 * sees it from a fleet.
 */
export function traceExportRequestPool(per: number, perTrace: number, count: number): Buffer[] {
  const spans = spansOf(per);
  return Array.from({ length: count }, () => {
    const traceIds = Array.from({ length: Math.ceil(per / perTrace) }, () => randomBytes(16));
    return encode(spans.map((s, i) => ({ ...s, traceId: traceIds[Math.floor(i / perTrace)]!, spanId: randomBytes(8) })));
  });
}
