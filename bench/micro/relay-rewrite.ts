// What the OTLP relay's rewrite costs per span, in isolation (no sockets): one agent export
// request of 100 spans (bench/lib/otlp-request.ts) rewritten with the default telemetry rule
// set, and without protection (the walk and copy alone), against protobuf.js decoding and
// re-encoding the same request in the same run (the least a rewrite through objects costs).
// npm run bench:micro:relay
import { validateConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { createProtection } from '../../src/protect/index.ts';
import { rewriteExport } from '../../src/telemetry/relay/index.ts';
import { otlpRoot, traceExportRequest } from '../lib/otlp-request.ts';

const SPANS = 100;
const body = traceExportRequest(SPANS);
const protection = await createProtection(validateConfig({}), createLogger('warn'));
const agent = protection.telemetryExport!.agent;
const extra = { 'k8s.pod.name': 'agent-7d9f', 'host.name': 'node-1' };
const Req = otlpRoot.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
if (Buffer.from(rewriteExport('traces', body, agent, extra).bytes).equals(body)) throw new Error('the request must hold values to protect');

/** µs per span of fn, over n requests. */
function time(n: number, fn: () => unknown): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - start) / n / SPANS / 1000;
}

const cases: Array<[string, () => unknown]> = [
  ['protobuf.js decode + encode', () => Req.encode(Req.decode(body)).finish()],
  ['rewrite, no protection', () => rewriteExport('traces', body, undefined, extra)],
  ['rewrite, default telemetry rules', () => rewriteExport('traces', body, agent, extra)],
];
for (let round = 0; round < 3; round++) for (const [, fn] of cases) time(200, fn);
const results = cases.map(([label, fn]) => [label, Math.min(time(1000, fn), time(1000, fn))] as const);
const base = results[0]![1];
process.stdout.write(`relay rewrite, ${SPANS} spans per request (${body.length} bytes), µs per span (best of two runs of 1000 requests)\n`);
for (const [label, us] of results)
  process.stdout.write(`  ${label.padEnd(34)} ${us.toFixed(2).padStart(6)} µs  ${(us / base).toFixed(2)}x the decode + encode\n`);
