/**
 * The two-tier collector topology on the built distribution, on loopback: three senders ->
 * one agent-tier collector (collector/otelcol.yaml + profiles/agent-tier.yaml) -> two
 * gateway collectors (+ profiles/high-volume.yaml + profiles/gateway-tier.yaml, so they
 * tail-sample) -> one OTLP receiver per gateway, in this process, so the test sees which
 * gateway exported what.
 *
 * The agent finds the gateways as a Kubernetes agent finds a headless Service: one DNS name
 * with an address per gateway, all on one port. Here the name is in a hosts file that only
 * the agent sees (a mount namespace of its own, so root only), the gateways listen on
 * 127.0.0.2 and 127.0.0.3, and a gateway leaves the name when it dies, as a pod leaves its
 * Service's endpoints.
 *
 * Every trace has four spans, each sent in its own export request, a second apart, by a
 * different sender than the one before; half of them have an error status on the last span
 * only. The gateways keep every trace with an error and 10% of the rest, so an error trace
 * kept whole proves that its gateway had every span when it decided.
 *
 * KEEP_E2E_DIR=1 keeps the run directory with every collector's configuration and output.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get } from '../../bench/lib/net.ts';
import { stopAll } from '../../bench/lib/procs.ts';
import { which } from '../../bench/lib/tools.ts';
import { locateStack } from '../../scripts/stack/build.ts';
import { encodeTraceRequest, startOtlpReceiver, type DecodedSpan, type OtlpReceiver } from '../otlp-receiver.ts';
import { saveStderr, stablePort, startCollector, type Collector } from './services.ts';

const NAME = 'gateways.otelcol.test';
const GATEWAYS = { a: '127.0.0.2', b: '127.0.0.3' } as const;
type Gateway = keyof typeof GATEWAYS;
const SPANS_PER_TRACE = 4;
const SENDERS = 3;
const SPANS_PER_REQUEST = 100;
/** The agent resolves the name every second here (5 s in the profile). */
const RESOLVE_INTERVAL = '1s';
/**
 * How long a span the agent accepted can still be held by a gateway: the agent's batch (1 s),
 * the gateway's decision_wait (15 s) and batch (5 s), and 4 s to spare. A gateway that dies
 * takes what it holds with it; everything accepted earlier must have been exported.
 */
const HELD_MS = 25_000;
/** How long to wait for what was sent to come out of the gateways. */
const SHOW_MS = 120_000;

/** Root, and a kernel that lets it make a mount namespace (a container without CAP_SYS_ADMIN does not). */
const runnable = process.getuid?.() === 0 && which('unshare') !== undefined && spawnSync('unshare', ['--mount', 'true']).status === 0;

interface PlannedSpan {
  trace: PlannedTrace;
  index: number;
  spanId: string;
  message: object;
  /** When the request carrying it was sent, and when the agent answered it. */
  sentAt?: number;
  acceptedAt?: number;
}

interface PlannedTrace {
  traceId: string;
  error: boolean;
  spans: PlannedSpan[];
}

/** Four spans, a root and three children, 10 ms apart (no latency policy applies); the error, if any, on the last. */
function plannedTrace(error: boolean): PlannedTrace {
  const traceId = randomBytes(16);
  const ids = Array.from({ length: SPANS_PER_TRACE }, () => randomBytes(8));
  const t0 = BigInt(Date.now()) * 1_000_000n;
  const trace: PlannedTrace = { traceId: traceId.toString('hex'), error, spans: [] };
  trace.spans = ids.map((spanId, k) => ({
    trace,
    index: k,
    spanId: spanId.toString('hex'),
    message: {
      traceId,
      spanId,
      parentSpanId: k === 0 ? Buffer.alloc(0) : ids[0],
      name: k === 0 ? 'POST /chat' : `step ${k}`,
      kind: k === 0 ? 2 : 3,
      startTimeUnixNano: String(t0 + BigInt(k) * 10_000_000n),
      endTimeUnixNano: String(t0 + BigInt(k) * 10_000_000n + 5_000_000n),
      status: error && k === SPANS_PER_TRACE - 1 ? { code: 2, message: 'upstream answered 503' } : { code: 0 },
    },
  }));
  return trace;
}

/** One client of the agent's OTLP/HTTP receiver: its own connection, its own resource. */
function sender(url: string, instance: number): (spans: PlannedSpan[]) => Promise<void> {
  const pool = new Pool(url, { connections: 1 });
  pools.push(pool);
  const str = (key: string, value: string) => ({ key, value: { stringValue: value } });
  const resource = { attributes: [str('service.name', 'support-agent'), str('service.instance.id', `sidecar-${instance}`)] };
  return async (spans) => {
    for (let i = 0; i < spans.length; i += SPANS_PER_REQUEST) {
      const chunk = spans.slice(i, i + SPANS_PER_REQUEST);
      const body = encodeTraceRequest({
        resourceSpans: [{ resource, scopeSpans: [{ scope: { name: 'collector-tiers.test' }, spans: chunk.map((s) => s.message) }] }],
      });
      const sentAt = Date.now();
      const res = await pool.request({ path: '/v1/traces', method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`the agent tier answered ${res.statusCode} to sender ${instance}`);
      const acceptedAt = Date.now();
      for (const s of chunk) Object.assign(s, { sentAt, acceptedAt });
    }
  };
}

/** Sends span `round` of each trace, each by a different sender than the span before it. */
async function sendRound(traces: readonly PlannedTrace[], round: number, offset = 0): Promise<void> {
  await Promise.all(senders.map((send, s) => send(traces.filter((_, i) => (i + offset + round) % SENDERS === s).map((t) => t.spans[round]!))));
}

interface Landing {
  gateways: Set<Gateway>;
  /** Span ids as exported, duplicates included. */
  spanIds: string[];
}

/** Where each trace's spans came out, by trace id. */
function landings(): Map<string, Landing> {
  const out = new Map<string, Landing>();
  for (const [gateway, receiver] of Object.entries(receivers) as Array<[Gateway, OtlpReceiver]>) {
    for (const span of receiver.spans() as DecodedSpan[]) {
      let l = out.get(span.traceId);
      if (l === undefined) out.set(span.traceId, (l = { gateways: new Set(), spanIds: [] }));
      l.gateways.add(gateway);
      l.spanIds.push(span.spanId);
    }
  }
  return out;
}

/** Polls `done` every 500 ms; past the deadline, fails with `what` and, if given, how far it got. */
async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = SHOW_MS, progress?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs / 1000} s: ${what}${progress === undefined ? '' : ` (${progress()})`}`);
    await sleep(500);
  }
}

/** One of a collector's own metrics (Prometheus text), summed over the series that match. */
async function metric(collector: Collector, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { body } = await get(`http://${collector.telemetryTarget}/metrics`, 2000);
  let sum = 0;
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The gateways the agent tier routes to now. */
const backends = () => metric(agent, 'otelcol_loadbalancer_num_backends', { resolver: 'dns' });
const signal = (c: Collector, name: NodeJS.Signals) => process.kill(-c.child.proc.pid!, name);

const figures: string[] = [];
const pools: Pool[] = [];
let senders: Array<(spans: PlannedSpan[]) => Promise<void>>;
let dir: string;
let hostsFile: string;
let receivers: Record<Gateway, OtlpReceiver>;
let gateways: Record<Gateway, Collector>;
let agent: Collector;
let port: number;

function writeHosts(members: readonly Gateway[]): void {
  // In place: the agent's /etc/hosts is this very file (a bind mount of its inode).
  writeFileSync(hostsFile, ['127.0.0.1 localhost', ...members.map((g) => `${GATEWAYS[g]} ${NAME}`), ''].join('\n'));
}

describe.skipIf(!runnable)('two collector tiers: trace-id routing to tail-sampling gateways', () => {
  beforeAll(async () => {
    const stack = locateStack();
    dir = mkdtempSync(join(tmpdir(), 'agent-sidecar-tiers-'));
    hostsFile = join(dir, 'hosts');
    writeHosts(['a', 'b']);
    receivers = { a: await startOtlpReceiver(), b: await startOtlpReceiver() };
    // Nothing in this test sends logs; the gateways' Elasticsearch exporter is never used.
    const elasticsearch = `http://127.0.0.1:${await stablePort()}`;
    port = await stablePort(Object.values(GATEWAYS));
    // The receivers here speak gzip, not zstd (what the profiles send Jaeger).
    const plain = join(dir, 'receiver-compression.yaml');
    writeFileSync(plain, 'exporters:\n  otlp_grpc/jaeger:\n    compression: gzip\n');
    const gateway = (g: Gateway) =>
      startCollector(stack, join(dir, `gateway-${g}`), {
        profile: ['high-volume', 'gateway-tier'],
        elasticsearch,
        jaegerOtlp: `127.0.0.1:${receivers[g].port}`,
        otlpGrpc: `${GATEWAYS[g]}:${port}`,
        overlays: [plain],
      });
    gateways = { a: await gateway('a'), b: await gateway('b') };
    agent = await startCollector(stack, join(dir, 'agent'), {
      profile: 'agent-tier',
      elasticsearch,
      jaegerOtlp: '127.0.0.1:9', // unused: the agent tier sends traces to the gateways
      hosts: hostsFile,
      env: { OTELCOL_GATEWAY_HOSTNAME: NAME, OTELCOL_GATEWAY_PORT: String(port), OTELCOL_GATEWAY_RESOLVE_INTERVAL: RESOLVE_INTERVAL },
    });
    senders = Array.from({ length: SENDERS }, (_, i) => sender(agent.otlpHttpUrl, i));
    await until('the agent tier resolves two gateways', async () => (await backends()) === 2, 30_000);
  });

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
    for (const [name, c] of Object.entries({ agent, ...gateways }))
      if (c !== undefined) saveStderr(c.child, join(dir, name === 'agent' ? 'agent' : `gateway-${name}`));
    await stopAll();
    await Promise.all(Object.values(receivers ?? {}).map((r) => r.stop()));
    if (figures.length > 0) process.stdout.write(`\ncollector tiers:\n${figures.map((f) => `  ${f}`).join('\n')}\n`);
    if (process.env.KEEP_E2E_DIR === undefined && dir !== undefined) rmSync(dir, { recursive: true, force: true });
    else if (dir !== undefined) process.stdout.write(`run directory kept: ${dir}\n`);
  });

  it('every trace comes out of exactly one gateway, whole: the tail-sampling decision saw all its spans', async () => {
    const traces = Array.from({ length: 1000 }, (_, i) => plannedTrace(i % 2 === 0));
    const started = Date.now();
    for (let round = 0; round < SPANS_PER_TRACE; round++) {
      await sendRound(traces, round);
      if (round < SPANS_PER_TRACE - 1) await sleep(1000);
    }
    const errorTraces = traces.filter((t) => t.error);
    const whole = () => {
      const out = landings();
      return errorTraces.filter((t) => (out.get(t.traceId)?.spanIds.length ?? 0) >= SPANS_PER_TRACE).length;
    };
    await until(
      'every error trace out of a gateway, whole',
      () => whole() === errorTraces.length,
      SHOW_MS,
      () => `${whole()} of ${errorTraces.length}`,
    );
    figures.push(`first phase: 1,000 traces of 4 spans out of the gateways ${((Date.now() - started) / 1000).toFixed(1)} s after the first span was sent`);
    await sleep(7000); // the gateways' batch (5 s): the sampled traces without an error come out with the others
    const out = landings();
    const perGateway = { a: 0, b: 0 };
    for (const t of errorTraces) {
      const l = out.get(t.traceId)!;
      expect([...l.gateways], t.traceId).toHaveLength(1);
      expect(l.spanIds.sort(), t.traceId).toEqual(t.spans.map((s) => s.spanId).sort());
      perGateway[[...l.gateways][0]!]++;
    }
    // Both gateways take a share (consistent hashing of random trace ids: about half each).
    expect(perGateway.a).toBeGreaterThan(errorTraces.length / 4);
    expect(perGateway.b).toBeGreaterThan(errorTraces.length / 4);
    // The rest: 10% kept, each whole, in one gateway; never a part of one.
    const kept = traces.filter((t) => !t.error && out.has(t.traceId));
    for (const t of kept) {
      const l = out.get(t.traceId)!;
      expect([...l.gateways], t.traceId).toHaveLength(1);
      expect(l.spanIds.sort(), t.traceId).toEqual(t.spans.map((s) => s.spanId).sort());
    }
    expect(kept.length).toBeLessThan(traces.length / 2 / 4);
    figures.push(`error traces per gateway: a ${perGateway.a}, b ${perGateway.b}; traces without an error kept: ${kept.length} of 500`);
  });

  it('a gateway killed under traffic: its traces go to the other, and nothing the agent tier holds is lost', async () => {
    // 40 new traces a second, each sent over 3 s (span k a second after span k-1); all with
    // an error on the last span, so the gateways keep every one and every span is accounted for.
    const TRACES_PER_SECOND = 40;
    const KILL_AT_MS = HELD_MS + 12_000;
    const STOP_AT_MS = KILL_AT_MS + 20_000;
    const traces: PlannedTrace[] = [];
    const open: PlannedTrace[][] = []; // by the second they started
    const failuresBefore = await metric(agent, 'otelcol_loadbalancer_backend_outcome', { success: 'false' });
    const acceptedByB = () => metric(gateways.b, 'otelcol_receiver_accepted_spans');
    const bBefore = { accepted: await acceptedByB(), exported: receivers.b.spans().length };
    let heldByB = 0;
    let killedAt = 0;
    let droppedAt = 0;
    const started = Date.now();
    let queuePeak = 0;
    const watch = (async () => {
      while ((droppedAt === 0 && Date.now() - started < STOP_AT_MS + 30_000) || Date.now() - started < STOP_AT_MS) {
        if (killedAt === 0 || Date.now() - killedAt > 1500)
          queuePeak = Math.max(queuePeak, await metric(agent, 'otelcol_exporter_queue_size', { data_type: 'traces' }));
        if (killedAt > 0 && droppedAt === 0 && (await backends()) === 1) droppedAt = Date.now();
        await sleep(200);
      }
    })();
    /**
     * The agent is paused for a second first, so that gateway b's count of accepted spans is
     * final when it is read: what b accepted and had not exported is what its crash loses.
     * The senders' requests wait meanwhile, as they would for a slow collector.
     */
    async function crash(): Promise<void> {
      signal(agent, 'SIGSTOP');
      await sleep(1000);
      heldByB = (await acceptedByB()) - bBefore.accepted;
      // A crash, not a shutdown: what gateway b holds is gone; its address leaves the name at once.
      signal(gateways.b, 'SIGKILL');
      killedAt = Date.now();
      writeHosts(['a']);
      signal(agent, 'SIGCONT');
      await gateways.b.child.exited;
    }
    for (let second = 0; open.some((batch) => batch.length > 0) || second * 1000 < STOP_AT_MS; second++) {
      await sleep(Math.max(0, started + second * 1000 - Date.now()));
      if (killedAt === 0 && Date.now() - started >= KILL_AT_MS) void crash();
      const fresh = second * 1000 < STOP_AT_MS ? Array.from({ length: TRACES_PER_SECOND }, () => plannedTrace(true)) : [];
      traces.push(...fresh);
      open.push(fresh);
      const due = open.flatMap((batch, at) => (second - at < SPANS_PER_TRACE ? batch.map((t) => t.spans[second - at]!) : []));
      if (second >= SPANS_PER_TRACE - 1) open[second - SPANS_PER_TRACE + 1] = [];
      await Promise.all(senders.map((send, s) => send(due.filter((_, i) => (i + second) % SENDERS === s))));
    }
    const spans = traces.flatMap((t) => t.spans);
    // Accepted by the agent after the kill: gateway b cannot have had them.
    const afterKill = spans.filter((s) => s.sentAt! >= killedAt);
    const longBefore = spans.filter((s) => s.acceptedAt! < killedAt - HELD_MS);
    const exported = () => new Set([...receivers.a.spans(), ...receivers.b.spans()].map((s) => s.spanId));
    const inA = () => new Set(receivers.a.spans().map((s) => s.spanId));
    const missing = () => {
      const a = inA();
      return afterKill.filter((s) => !a.has(s.spanId)).length;
    };
    await until(
      'every span the agent accepted after the kill out of gateway a',
      () => missing() === 0,
      SHOW_MS,
      () => `${missing()} missing`,
    );
    await watch;
    await sleep(7000); // the rest of gateway a's batches
    const a = inA();
    const all = exported();
    const lost = spans.filter((s) => !all.has(s.spanId));
    heldByB -= receivers.b.spans().length - bBefore.exported;
    // Lost: only spans gateway b had accepted and not exported when it died.
    expect(lost.length).toBeLessThanOrEqual(heldByB);
    expect(afterKill.filter((s) => !a.has(s.spanId))).toEqual([]);
    expect(longBefore.filter((s) => !all.has(s.spanId))).toEqual([]);
    // What is lost was accepted by the agent tier within HELD_MS before the kill: what gateway b held.
    for (const s of lost) expect(s.acceptedAt!).toBeGreaterThanOrEqual(killedAt - HELD_MS - 1000);
    // The agent saw gateway b fail and held those spans until it could route them elsewhere.
    expect(droppedAt).toBeGreaterThan(0);
    expect(await metric(agent, 'otelcol_loadbalancer_backend_outcome', { success: 'false' })).toBeGreaterThan(failuresBefore);
    const out = landings();
    const split = traces.filter((t) => (out.get(t.traceId)?.gateways.size ?? 0) > 1);
    expect(split.map((t) => t.traceId)).toEqual([]);
    const ids = new Set(traces.map((t) => t.traceId));
    const ofThisPhase = receivers.a.spans().filter((s) => ids.has(s.traceId));
    const duplicates = ofThisPhase.length - new Set(ofThisPhase.map((s) => s.spanId)).size;
    const incomplete = traces.filter((t) => {
      const l = out.get(t.traceId);
      return l !== undefined && new Set(l.spanIds).size < SPANS_PER_TRACE;
    });
    figures.push(
      `kill: ${traces.length} traces (${spans.length} spans) over ${(STOP_AT_MS / 1000).toFixed(0)} s, gateway b killed at ${(KILL_AT_MS / 1000).toFixed(0)} s; ` +
        `the agent routed to gateway a alone ${((droppedAt - killedAt) / 1000).toFixed(1)} s after the kill; queue peak ${queuePeak} requests`,
      `kill: ${afterKill.length} spans accepted after the kill, all out of gateway a; gateway b held ${heldByB} spans when it died, ` +
        `${lost.length} were lost (of ${new Set(lost.map((s) => s.trace.traceId)).size} traces); ` +
        `${incomplete.length} traces out incomplete; ${duplicates} spans out twice`,
    );
  });
});
