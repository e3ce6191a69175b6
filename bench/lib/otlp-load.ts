// An agent's own telemetry at a steady rate: OTLP/HTTP protobuf export requests of
// `per` spans each, sent to `url` (a relay's /v1/traces) `rate / per` times a second, as an
// instrumented agent's batch exporter sends them. Each span has a dozen attributes, one of
// them an e-mail address, so that the relay's protection has work to do. With a fourth
// argument, `spansPerTrace`, the spans of a request belong to traces of that many spans
// each, with trace ids new to every request of a pool of 1,000 (a collector that routes or
// samples by trace id sees traffic like a fleet's); without it, every request carries the
// same 64 trace ids. Runs as its own process (bench/relay.ts starts it), so that its CPU is
// not the bench's. Prints one JSON line with what was sent and answered when it gets SIGTERM.
import { Pool } from 'undici';
import { traceExportRequest, traceExportRequestPool } from './otlp-request.ts';

const [url, rateText, perText, perTraceText] = process.argv.slice(2);
const rate = Number(rateText);
const per = Number(perText);
const perTrace = perTraceText === undefined ? undefined : Number(perTraceText);
if (url === undefined || !(rate > 0) || !(per > 0) || (perTrace !== undefined && !(perTrace > 0))) {
  process.stderr.write('usage: otlp-load.ts <url of /v1/traces> <spans per second> <spans per request> [spans per trace]\n');
  process.exit(2);
}

const bodies = perTrace === undefined ? [traceExportRequest(per)] : traceExportRequestPool(per, perTrace, 1000);
const target = new URL(url);
const pool = new Pool(target.origin, { connections: 4 });
const stats = { requests: 0, ok: 0, failed: 0, spans: 0, bytes: bodies[0]!.length };
const interval = 1000 / (rate / per);
let next = performance.now();
function tick(): void {
  next += interval;
  const body = bodies[stats.requests % bodies.length]!;
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
