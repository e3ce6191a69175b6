// An agent's own telemetry at a steady rate: OTLP/HTTP protobuf export requests of
// `per` spans each, sent to `url` (a relay's /v1/traces) `rate / per` times a second, as an
// instrumented agent's batch exporter sends them. Each span has a dozen attributes, one of
// them an e-mail address, so that the relay's protection has work to do. Runs as its own
// process (bench/relay.ts starts it), so that its CPU is not the bench's. Prints one JSON line
// with what was sent and answered when it gets SIGTERM.
import { createRequire } from 'node:module';
import { Pool } from 'undici';

const [url, rateText, perText] = process.argv.slice(2);
const rate = Number(rateText);
const per = Number(perText);
if (url === undefined || !(rate > 0) || !(per > 0)) {
  process.stderr.write('usage: otlp-load.ts <url of /v1/traces> <spans per second> <spans per request>\n');
  process.exit(2);
}

const require = createRequire(import.meta.url);
const root = require('otlp-proto-root/build/src/generated/root.js') as {
  opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: { encode(o: unknown): { finish(): Uint8Array } } } } } } };
};
const str = (key: string, value: string) => ({ key, value: { stringValue: value } });
const now = BigInt(Date.now()) * 1_000_000n;
const spans = Array.from({ length: per }, (_, i) => ({
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
const body = Buffer.from(
  root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.encode({
    resourceSpans: [
      {
        // Not the sidecar's mark: the receiver counts these apart (as foreign), so the relayed spans can be told from the sidecar's own.
        resource: { attributes: [str('service.name', 'bench-agent')] },
        scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http' }, spans }],
      },
    ],
  }).finish(),
);

const target = new URL(url);
const pool = new Pool(target.origin, { connections: 4 });
const stats = { requests: 0, ok: 0, failed: 0, spans: 0, bytes: body.length };
const interval = 1000 / (rate / per);
let next = performance.now();
function tick(): void {
  next += interval;
  stats.requests++;
  pool.request({ path: target.pathname, method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body }).then(
    async (res) => {
      await res.body.dump();
      if (res.statusCode === 200) {
        stats.ok++;
        stats.spans += per;
      } else stats.failed++;
    },
    () => stats.failed++,
  );
  setTimeout(tick, Math.max(0, next - performance.now()));
}
tick();
process.on('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  void pool.close().finally(() => process.exit(0));
});
