// Cost of data protection with the default rules, in isolation (no sockets): typical JSON chat
// bodies of 4 KB and 64 KB against JSON.parse + JSON.stringify of the same bodies in the same
// run (the least any JSON rewrite costs), the access record of every request, and the proxy path.
// npm run bench:micro:protect
import { validateConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { createProtection } from '../../src/protect/index.ts';
import { chatBody } from './payloads.ts';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { assembleSidecar } from '../../src/sidecar.ts';
import type { RequestContext } from '../../src/core/index.ts';

const protection = await createProtection(validateConfig({}), createLogger('warn'));
const protector = protection.ruleSet('default');

/** µs per call of fn over `bodies`, round robin. */
function time(bodies: readonly string[], n: number, fn: (body: string) => unknown): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(bodies[i % bodies.length]!);
  return Number(process.hrtime.bigint() - start) / n / 1000;
}

function measure(label: string, bodies: readonly string[], n: number): void {
  const bytes = bodies.reduce((a, b) => a + b.length, 0) / bodies.length;
  const baseline = (b: string) => JSON.stringify(JSON.parse(b));
  const protect = (b: string) => protector.json(b);
  for (let i = 0; i < 3; i++) {
    time(bodies, n / 5, baseline);
    time(bodies, n / 5, protect);
  }
  const base = time(bodies, n, baseline);
  const prot = time(bodies, n, protect);
  const mbps = (µs: number) => (bytes / µs).toFixed(0);
  process.stdout.write(
    `${label.padEnd(44)} ${String(Math.round(bytes)).padStart(6)} B  protect ${prot.toFixed(1).padStart(7)} µs = ${mbps(prot).padStart(4)} MB/s` +
      `  parse+stringify ${base.toFixed(1).padStart(6)} µs = ${mbps(base).padStart(4)} MB/s  ratio ${(prot / base).toFixed(1)}x\n`,
  );
}

const distinct = (bytes: number, count: number, pii = true) => Array.from({ length: count }, (_, seed) => chatBody(bytes, seed + 1, pii));
if (protector.json(chatBody(4096)) === chatBody(4096)) throw new Error('the benchmark bodies must contain values to protect');

measure('4 KB, no protected value', distinct(4096, 1, false), 20_000);
measure('4 KB, repeated (a conversation resent)', distinct(4096, 1), 20_000);
measure('4 KB, each body different', distinct(4096, 2000), 20_000);
measure('64 KB, no protected value', distinct(65_536, 1, false), 1_000);
measure('64 KB, each body different', distinct(65_536, 100), 1_000);

// The access record every request writes, through the stdout log protection.
const telemetry = protection.telemetry!;
const record = {
  event_type: 'access',
  request_id: '6f1c2b7e-8d3a-4f7e-9c1d-2b5a7e9f0c11',
  agent_type: 'agent',
  method: 'GET',
  route: '/api/v1/agents/{agent_id}',
  path: '/api/v1/agents/a-1234',
  status_code: 200,
  duration_ms: 1.234,
  bytes_in: 0,
  bytes_out: 512,
  trace_id: '0af7651916cd43dd8448eb211c80319c',
  span_id: 'b7ad6b7169203331',
  user_id: 'u-48213',
};
const message = `GET ${record.path} 200`;
const accessRecord = () => [telemetry.attributes(record), telemetry.text(message)];
time([''], 50_000, accessRecord);
process.stdout.write(`access record (its stdout line and OTLP record): ${time([''], 200_000, accessRecord).toFixed(2)} µs per request\n`);

// The proxy path: the same 4 KB JSON POST, sequentially, through a sidecar with and without a
// protected route (request and response bodies), in this process against a local echo agent.
// Sequential and bounded: it measures added time per request, not throughput under load.

const echo = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/json' });
  req.pipe(res);
});
echo.listen(0, '127.0.0.1');
await once(echo, 'listening');
const agentUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`;

async function sidecarWith(routes: Array<{ path: string }>) {
  const config = validateConfig({
    listen: { address: '127.0.0.1:0' },
    admin: { enabled: false },
    upstream: { url: agentUrl },
    log: { level: 'warn' },
    telemetry: { enabled: false },
    egress: { enabled: false },
    protection: { routes },
  });
  const s = await assembleSidecar(config, createLogger('warn'));
  const { ingress } = await s.start();
  return { url: `http://127.0.0.1:${ingress.port}`, stop: () => s.shutdown({ drainDelay: 0 }) };
}

const plain = await sidecarWith([]);
const guarded = await sidecarWith([{ path: '/*' }]);
const payload = chatBody(4096, 7);
async function perRequest(url: string, n: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const res = await request(`${url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
    await res.body.arrayBuffer();
  }
  return Number(process.hrtime.bigint() - start) / n / 1000;
}
const check = await request(`${guarded.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
if (!(await check.body.text()).includes('[REDACTED:')) throw new Error('the protected route did not protect the body');
await perRequest(plain.url, 300);
await perRequest(guarded.url, 300);
// Alternating rounds, median of each: a busy machine moves both sides alike within a round.
const offs: number[] = [];
const ons: number[] = [];
for (let round = 0; round < 7; round++) {
  offs.push(await perRequest(plain.url, 400));
  ons.push(await perRequest(guarded.url, 400));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const off = median(offs);
const on = median(ons);
process.stdout.write(
  `proxy path, 4 KB JSON POST echoed (request and response protected), sequential, median of 7 rounds: ${off.toFixed(0)} µs -> ${on.toFixed(0)} µs per request (+${(on - off).toFixed(0)} µs)\n`,
);
await plain.stop();
await guarded.stop();
echo.close();

// SSE responses protected event by event (the body stage's framed transform): 1 MB of chat
// events with no protected value (every event passes through as it came) in writes of 8 events.
const sseStage = (await createProtection(validateConfig({ protection: { routes: [{ path: '/*' }] } }), createLogger('warn'))).stage!;
const sseEvent = `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'the agent should summarise the ticket' } }] })}\n\n`;
const sseChunks: Buffer[] = [];
for (let n = 0; n * sseEvent.length < 1024 * 1024; n += 8) sseChunks.push(Buffer.from(sseEvent.repeat(8)));
function protectSse(): void {
  const ctx = {
    req: { method: 'GET', headers: {} },
    target: '/v1/stream',
    requestId: 'r',
    upstreamHeaders: new Map(),
    strippedHeaders: new Set(),
  } as unknown as RequestContext;
  sseStage(ctx);
  const t = ctx.responseBody!(200, { 'content-type': 'text/event-stream' })!;
  for (const c of sseChunks) t.push(c);
  t.end();
}
for (let i = 0; i < 5; i++) protectSse();
const sseBefore = process.cpuUsage();
for (let i = 0; i < 20; i++) protectSse();
const sseUsed = process.cpuUsage(sseBefore);
process.stdout.write(
  `SSE response, 1 MB of chat events in writes of 8, event by event: ${((sseUsed.user + sseUsed.system) / 20 / 1000).toFixed(1)} ms CPU per MB\n`,
);
