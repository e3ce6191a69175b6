import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Client, Pool, type Dispatcher } from 'undici';
import { RawHttpClient, rawPost } from './lib/http-reader.ts';
import { freePort, HOST, waitFor200 } from './lib/net.ts';
import { treeCpuNanos } from './lib/proc.ts';
import { installCleanup, startChild, stopAll } from './lib/procs.ts';
import { NGINX, SIDECAR_ENV, SIDECAR_V8_FLAGS, startNginxProxy } from './lib/servers.ts';
import { executable } from './lib/tools.ts';

/**
 * npm run bench:egress: a streamed completion of 1 MB (an Anthropic Messages stream) from a
 * stand-in provider, fetched direct and through the sidecar's egress listener in the same run,
 * alternating, one call at a time on keep-alive connections. Prints the time to the first
 * body byte each path takes, what the egress adds at p50 and p90, the throughput ratio, and
 * the CPU each process (client, provider, the process in the middle) spent per call.
 *
 * The client is a raw socket that counts body bytes (bench/lib/http-reader.ts), the same for
 * every path: the load generator should cost as little as it can, since on a small machine
 * its CPU is taken from the provider and the sidecar (an undici Pool read with for await, the
 * client this bench used first, costs about three times as much: `--client pool`; `--client
 * dispatch` is undici's dispatch with a handler that only counts). CPU is each process's
 * threads' run time around each call (/proc/<pid>/task/<tid>/schedstat, nanoseconds; the
 * client's own with process.cpuUsage), so what the sidecar costs per MB is measured apart
 * from how the scheduler shares the cores. `--floors` adds two hops that are not the sidecar:
 * bench/lib/bare-proxy.ts (node:http + undici, each chunk written as it comes) and
 * bench/lib/tcp-relay.ts (bytes piped both ways, no HTTP at all): the least any Node.js hop
 * costs on this machine; and nginx with proxy_buffering off, when it is installed.
 */

const SIDECAR_CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const PROVIDER = fileURLToPath(new URL('./lib/llm-provider.ts', import.meta.url));
const BARE_PROXY = fileURLToPath(new URL('./lib/bare-proxy.ts', import.meta.url));
const TCP_RELAY = fileURLToPath(new URL('./lib/tcp-relay.ts', import.meta.url));
const BODY = JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 64_000, stream: true, messages: [{ role: 'user', content: 'Write a long story.' }] });

const CLIENTS = ['raw', 'dispatch', 'pool'] as const;
type ClientKind = (typeof CLIENTS)[number];
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '15' },
    bytes: { type: 'string', default: String(1024 * 1024) },
    client: { type: 'string', default: 'raw' },
    floors: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const warmup = Number(values.warmup);
const bytes = Number(values.bytes);
const clientKind = values.client as ClientKind;
if (!CLIENTS.includes(clientKind)) throw new Error(`--client: one of ${CLIENTS.join(', ')}`);
let perCall = '';
const loadBefore = os
  .loadavg()
  .map((l) => l.toFixed(2))
  .join(' ');

const ALL_LEGS = ['direct', 'egress', 'hop', 'undici-proxy', 'tcp-relay', 'nginx'] as const;
type Leg = (typeof ALL_LEGS)[number];
// With --floors, more hops that are not the sidecar: what any Node.js hop costs, and nginx (when installed).
const LEGS: readonly Leg[] = values.floors ? ALL_LEGS.filter((l) => l !== 'nginx' || executable(NGINX)) : ALL_LEGS.slice(0, 3);
const HEADERS = { 'content-type': 'application/json', 'x-api-key': 'bench' };

interface Sample {
  ttfbMs: number;
  totalMs: number;
  bytes: number;
}

/** One call: the time to the first body byte, the time to the end, and the body bytes. */
type Call = () => Promise<Sample>;

/** The load client of one path: one keep-alive connection, one call at a time. */
interface Target {
  call: Call;
  close(): Promise<void>;
}

/** A raw socket that counts body bytes (bench/lib/http-reader.ts): the cheapest reader. */
function rawTarget(origin: URL, path: string): Target {
  const client = new RawHttpClient(origin.hostname, Number(origin.port));
  const request = rawPost(origin.host, path, HEADERS, BODY);
  return {
    async call() {
      const start = process.hrtime.bigint();
      const r = await client.send(request);
      const end = process.hrtime.bigint();
      if (r.status !== 200) throw new Error(`${path} answered ${r.status}`);
      perCall = r.headers['x-output-tokens'] ?? '';
      return { ttfbMs: Number((r.firstBodyAt ?? end) - start) / 1e6, totalMs: Number(end - start) / 1e6, bytes: r.bodyBytes };
    },
    close: async () => client.close(),
  };
}

/** undici's dispatch with a handler that only counts bytes (undici's parser, no stream). */
function dispatchTarget(origin: URL, path: string): Target {
  const client = new Client(origin, { pipelining: 1 });
  const options: Dispatcher.DispatchOptions = { path, method: 'POST', headers: HEADERS, body: BODY };
  return {
    call: () =>
      new Promise((resolve, reject) => {
        const start = process.hrtime.bigint();
        let first: bigint | undefined;
        let n = 0;
        let status = 0;
        client.dispatch(options, {
          onRequestStart() {},
          onResponseStart(_c, statusCode, headers) {
            status = statusCode;
            perCall = String(headers['x-output-tokens']);
          },
          onResponseData(_c, chunk: Buffer) {
            first ??= process.hrtime.bigint();
            n += chunk.length;
          },
          onResponseEnd() {
            const end = process.hrtime.bigint();
            if (status !== 200) reject(new Error(`${path} answered ${status}`));
            else resolve({ ttfbMs: Number((first ?? end) - start) / 1e6, totalMs: Number(end - start) / 1e6, bytes: n });
          },
          onResponseError(_c, err) {
            reject(err);
          },
        });
      }),
    close: () => client.close(),
  };
}

/** undici's Pool.request, the body read with for await (the client an application would write; it costs the most CPU). */
function poolTarget(origin: URL, path: string): Target {
  const pool = new Pool(origin, { connections: 1 });
  return {
    async call() {
      const start = process.hrtime.bigint();
      let first: bigint | undefined;
      let n = 0;
      const res = await pool.request({ path, method: 'POST', headers: HEADERS, body: BODY });
      if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}: ${await res.body.text()}`);
      perCall = String(res.headers['x-output-tokens']);
      for await (const chunk of res.body) {
        first ??= process.hrtime.bigint();
        n += (chunk as Buffer).length;
      }
      const end = process.hrtime.bigint();
      return { ttfbMs: Number((first ?? end) - start) / 1e6, totalMs: Number(end - start) / 1e6, bytes: n };
    },
    close: () => pool.close(),
  };
}

const TARGETS: Record<ClientKind, (origin: URL, path: string) => Target> = { raw: rawTarget, dispatch: dispatchTarget, pool: poolTarget };

/** CPU nanoseconds one call cost each process. */
interface Cpu {
  client: number;
  provider: number;
  /** The process in the middle: the sidecar (idle, for `direct`), or the floor's. */
  hop: number;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const fmt = (x: number, d = 3) => x.toFixed(d);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

async function main(): Promise<void> {
  installCleanup();
  const tmp = mkdtempSync(join(os.tmpdir(), 'agent-sidecar-bench-egress-'));
  try {
    const [providerPort, listenPort, adminPort, egressPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const provider = startChild('provider', process.execPath, [PROVIDER, `${HOST}:${providerPort}`, String(bytes)]);
    const providerUrl = `http://${HOST}:${providerPort}`;
    await waitFor200(`${providerUrl}/`, provider);
    const config = join(tmp, 'sidecar.yaml');
    writeFileSync(
      config,
      [
        `listen: { address: "${HOST}:${listenPort}" }`,
        `upstream: { url: "${providerUrl}" }`,
        `admin: { address: "${HOST}:${adminPort}" }`,
        'log: { level: warn }',
        `egress: { address: "${HOST}:${egressPort}", allowHttp: true, providers: { anthropic: { origin: "${providerUrl}" } } }`,
        // Metrics recorded (and served at /metrics), nothing exported: the cost measured is the hop and the accounting.
        'telemetry: { metrics: { otlp: false }, traces: { enabled: false }, logs: { otlp: false, stdout: false } }',
      ].join('\n'),
    );
    const env = { ...SIDECAR_ENV, ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_'))) };
    const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
    // From source, with the V8 flags and environment the launcher gives the deployed sidecar.
    const sidecar = startChild('sidecar', process.execPath, [...SIDECAR_V8_FLAGS, ...prof, SIDECAR_CLI, 'run', '--config', config], { env });
    await waitFor200(`http://${HOST}:${adminPort}/readyz`, sidecar);

    // `hop` is the egress listener without accounting (a path it passes through unmetered; the
    // stand-in answers every POST with the stream): what the hop costs, apart from reading usage.
    const egressUrl = new URL(`http://${HOST}:${egressPort}`);
    const make = TARGETS[clientKind];
    const targets: Partial<Record<Leg, Target>> = {
      direct: make(new URL(providerUrl), '/v1/messages'),
      egress: make(egressUrl, '/anthropic/v1/messages'),
      hop: make(egressUrl, '/anthropic/v1/messages/batches'),
    };
    // The process between client and provider, whose CPU the `hop process` column is (for `direct`, the idle sidecar).
    const middle: Partial<Record<Leg, number>> = { direct: sidecar.proc.pid!, egress: sidecar.proc.pid!, hop: sidecar.proc.pid! };
    if (values.floors) {
      const [bareProxyPort, relayPort] = [await freePort(), await freePort()];
      const bare = startChild('undici-proxy', process.execPath, [...SIDECAR_V8_FLAGS, BARE_PROXY, `${HOST}:${bareProxyPort}`, providerUrl], {
        env: { ...SIDECAR_ENV, ...process.env },
      });
      const relay = startChild('tcp-relay', process.execPath, [TCP_RELAY, `${HOST}:${relayPort}`, `${HOST}:${providerPort}`]);
      await waitFor200(`http://${HOST}:${bareProxyPort}/`, bare);
      await waitFor200(`http://${HOST}:${relayPort}/`, relay);
      targets['undici-proxy'] = make(new URL(`http://${HOST}:${bareProxyPort}`), '/v1/messages');
      targets['tcp-relay'] = make(new URL(`http://${HOST}:${relayPort}`), '/v1/messages');
      Object.assign(middle, { 'undici-proxy': bare.proc.pid!, 'tcp-relay': relay.proc.pid! });
      if (LEGS.includes('nginx')) {
        // As the SSE scenarios run it: proxy_buffering off, each event passed on as it arrives.
        const nginx = await startNginxProxy(tmp, { name: 'provider', url: `${providerUrl}/`, child: provider }, undefined, { streaming: true });
        targets.nginx = make(new URL(nginx.url), '/v1/messages');
        middle.nginx = nginx.child.proc.pid!;
      }
    }
    const results = Object.fromEntries(LEGS.map((l) => [l, [] as Sample[]])) as Record<Leg, Sample[]>;
    const cpu = Object.fromEntries(LEGS.map((l) => [l, [] as Cpu[]])) as Record<Leg, Cpu[]>;
    const providerPid = provider.proc.pid!;
    for (let i = 0; i < warmup + runs; i++) {
      // Rotating, so that a slow moment of a shared machine hits every path alike.
      const order = LEGS.map((_, k) => LEGS[(i + k) % LEGS.length]!);
      for (const name of order) {
        // Each process's CPU around the call; the client's own reading of /proc stays outside its window.
        const hopPid = middle[name]!;
        const p0 = treeCpuNanos(providerPid);
        const h0 = treeCpuNanos(hopPid);
        const c0 = process.cpuUsage();
        const s = await targets[name]!.call();
        const c = process.cpuUsage(c0);
        const h1 = treeCpuNanos(hopPid);
        const p1 = treeCpuNanos(providerPid);
        if (i < warmup) continue;
        results[name].push(s);
        cpu[name].push({ client: (c.user + c.system) * 1000, provider: p1 - p0, hop: h1 - h0 });
      }
    }
    for (const t of Object.values(targets)) await t.close();
    const metrics = await (await fetch(`http://${HOST}:${adminPort}/metrics`)).text();
    const counted = /llm_tokens_total\{[^}]*token_type="output"[^}]*\} (\d+)/.exec(metrics)?.[1];

    const stat = (name: Leg) => {
      const r = results[name];
      const mbps = r.map((s) => s.bytes / 1e6 / (s.totalMs / 1e3));
      return {
        ttfb50: pct(
          r.map((s) => s.ttfbMs),
          50,
        ),
        ttfb90: pct(
          r.map((s) => s.ttfbMs),
          90,
        ),
        total50: pct(
          r.map((s) => s.totalMs),
          50,
        ),
        mbps50: pct(mbps, 50),
        bytes: r[0]!.bytes,
      };
    };
    const d = stat('direct');
    const e = stat('egress');
    const h = stat('hop');
    // CPU per call: means (CPU adds up over calls; a median of each process would not add up to the whole).
    const cpuOf = (name: Leg) => {
      const c = cpu[name];
      const mean = (k: keyof Cpu) => sum(c.map((x) => x[k])) / c.length / 1e6;
      const wall = sum(results[name].map((x) => x.totalMs)) / c.length;
      const all = mean('client') + mean('provider') + mean('hop');
      const mb = results[name][0]!.bytes / 1e6;
      const s = stat(name);
      const label = name === 'direct' ? 'direct (sidecar idle)' : name === 'hop' ? 'egress, unmetered path' : name;
      return `| ${label} | ${fmt(s.ttfb50)} | ${fmt(s.ttfb90)} | ${fmt(s.total50, 1)} | ${fmt(s.mbps50, 0)} | ${fmt(mean('client'), 2)} | ${fmt(mean('provider'), 2)} | ${fmt(mean('hop'), 2)} | ${fmt(mean('hop') / mb, 2)} | ${fmt(all / wall, 2)} |`;
    };
    const sidecarPerMb = sum(cpu.egress.map((x) => x.hop)) / cpu.egress.length / 1e6 / (e.bytes / 1e6);
    const hopPerMb = sum(cpu.hop.map((x) => x.hop)) / cpu.hop.length / 1e6 / (h.bytes / 1e6);
    const added50 = e.ttfb50 - d.ttfb50;
    const added90 = e.ttfb90 - d.ttfb90;
    const ratio = e.mbps50 / d.mbps50;
    process.stdout.write(
      [
        '',
        `agent-sidecar egress benchmark: a streamed completion of ${(d.bytes / 1048576).toFixed(2)} MiB, ${runs} calls per path after ${warmup} warm-up, alternating, one at a time, client ${clientKind}`,
        `Node ${process.version}, ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? 'unknown'}); provider, sidecar and client are separate processes on this machine`,
        '',
        `CPU: per call, mean, by process (ms; the client is \`${clientKind}\`); the middle process's per MB; cores busy: all three processes' CPU / wall time, of ${os.availableParallelism()}`,
        '',
        '| path | TTFB p50 ms | TTFB p90 ms | total p50 ms | MB/s p50 | client CPU | provider CPU | middle CPU | middle CPU per MB | cores busy |',
        '|---|---|---|---|---|---|---|---|---|---|',
        ...LEGS.map(cpuOf),
        '',
        `sidecar CPU per MB streamed: ${fmt(sidecarPerMb, 2)} ms with usage read, ${fmt(hopPerMb, 2)} ms unmetered`,
        `TTFB added by egress: p50 ${fmt(added50)} ms, p90 ${fmt(added90)} ms (target ≤ 1 ms): ${added50 <= 1 ? 'PASS' : 'MISS'}`,
        `throughput egress / direct: ${fmt(ratio, 2)}x (target ≥ 0.90x): ${ratio >= 0.9 ? 'PASS' : 'MISS'}; unmetered hop / direct ${fmt(h.mbps50 / d.mbps50, 2)}x, egress / unmetered hop ${fmt(e.mbps50 / h.mbps50, 2)}x (what reading usage costs)`,
        `load average before / after: ${loadBefore} / ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
        `output tokens counted: ${counted ?? 'none'}, the stand-in reports ${perCall} per call × ${warmup + runs} calls = ${Number(perCall) * (warmup + runs)}`,
        '',
      ].join('\n'),
    );
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench:egress: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
