import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { freePort, HOST, waitFor200 } from './lib/net.ts';
import { installCleanup, startChild, stopAll } from './lib/procs.ts';

/**
 * npm run bench:egress: a streamed completion of 1 MB (an Anthropic Messages stream) from a
 * stand-in provider, fetched direct and through the sidecar's egress listener in the same run,
 * alternating, one call at a time on keep-alive connections. Prints the time to the first
 * byte each path takes, what the egress adds at p50 and p90, and the throughput ratio.
 */

const SIDECAR_CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const PROVIDER = fileURLToPath(new URL('./lib/llm-provider.ts', import.meta.url));
const BODY = JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 64_000, stream: true, messages: [{ role: 'user', content: 'Write a long story.' }] });

const { values } = parseArgs({ options: { runs: { type: 'string', default: '60' }, warmup: { type: 'string', default: '15' }, bytes: { type: 'string', default: String(1024 * 1024) } } });
const runs = Number(values.runs);
const warmup = Number(values.warmup);
const bytes = Number(values.bytes);
let perCall = '';
const loadBefore = os.loadavg().map((l) => l.toFixed(2)).join(' ');

const LEGS = ['direct', 'egress', 'hop'] as const;
type Leg = (typeof LEGS)[number];

interface Sample {
  ttfbMs: number;
  totalMs: number;
  bytes: number;
}

async function fetchOnce(pool: Pool, path: string): Promise<Sample> {
  const start = process.hrtime.bigint();
  let first: bigint | undefined;
  let n = 0;
  const res = await pool.request({ path, method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'bench' }, body: BODY });
  if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}: ${await res.body.text()}`);
  perCall = String(res.headers['x-output-tokens']);
  for await (const chunk of res.body) {
    first ??= process.hrtime.bigint();
    n += (chunk as Buffer).length;
  }
  const end = process.hrtime.bigint();
  return { ttfbMs: Number((first ?? end) - start) / 1e6, totalMs: Number(end - start) / 1e6, bytes: n };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const fmt = (x: number, d = 3) => x.toFixed(d);

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
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
    const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
    const sidecar = startChild('sidecar', process.execPath, [...prof, SIDECAR_CLI, 'run', '--config', config], { env });
    await waitFor200(`http://${HOST}:${adminPort}/readyz`, sidecar);

    const direct = new Pool(providerUrl, { connections: 1 });
    const egress = new Pool(`http://${HOST}:${egressPort}`, { connections: 1 });
    // `hop` is the egress listener without accounting (a path it passes through unmetered; the
    // stand-in answers every POST with the stream): what the hop costs, apart from reading usage.
    const paths: Record<Leg, [Pool, string]> = { direct: [direct, '/v1/messages'], egress: [egress, '/anthropic/v1/messages'], hop: [egress, '/anthropic/v1/messages/batches'] };
    const results: Record<Leg, Sample[]> = { direct: [], egress: [], hop: [] };
    for (let i = 0; i < warmup + runs; i++) {
      // Rotating, so that a slow moment of a shared machine hits every path alike.
      const order = LEGS.map((_, k) => LEGS[(i + k) % LEGS.length]!);
      for (const name of order) {
        const s = await fetchOnce(...paths[name]);
        if (i >= warmup) results[name].push(s);
      }
    }
    await direct.close();
    await egress.close();
    const metrics = await (await fetch(`http://${HOST}:${adminPort}/metrics`)).text();
    const counted = /llm_tokens_total\{[^}]*token_type="output"[^}]*\} (\d+)/.exec(metrics)?.[1];

    const stat = (name: Leg) => {
      const r = results[name];
      const mbps = r.map((s) => s.bytes / 1e6 / (s.totalMs / 1e3));
      return { ttfb50: pct(r.map((s) => s.ttfbMs), 50), ttfb90: pct(r.map((s) => s.ttfbMs), 90), total50: pct(r.map((s) => s.totalMs), 50), mbps50: pct(mbps, 50), bytes: r[0]!.bytes };
    };
    const d = stat('direct');
    const e = stat('egress');
    const h = stat('hop');
    const added50 = e.ttfb50 - d.ttfb50;
    const added90 = e.ttfb90 - d.ttfb90;
    const ratio = e.mbps50 / d.mbps50;
    process.stdout.write(
      [
        '',
        `agent-sidecar egress benchmark: a streamed completion of ${(d.bytes / 1048576).toFixed(2)} MiB, ${runs} calls per path after ${warmup} warm-up, alternating, one at a time`,
        `Node ${process.version}, ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? 'unknown'}); provider, sidecar and client are separate processes on this machine`,
        '',
        '| path | TTFB p50 ms | TTFB p90 ms | total p50 ms | MB/s p50 |',
        '|---|---|---|---|---|',
        `| direct | ${fmt(d.ttfb50)} | ${fmt(d.ttfb90)} | ${fmt(d.total50, 1)} | ${fmt(d.mbps50, 0)} |`,
        `| egress | ${fmt(e.ttfb50)} | ${fmt(e.ttfb90)} | ${fmt(e.total50, 1)} | ${fmt(e.mbps50, 0)} |`,
        `| egress, unmetered path | ${fmt(h.ttfb50)} | ${fmt(h.ttfb90)} | ${fmt(h.total50, 1)} | ${fmt(h.mbps50, 0)} |`,
        '',
        `TTFB added by egress: p50 ${fmt(added50)} ms, p90 ${fmt(added90)} ms (target ≤ 1 ms): ${added50 <= 1 ? 'PASS' : 'MISS'}`,
        `throughput egress / direct: ${fmt(ratio, 2)}x (target ≥ 0.90x): ${ratio >= 0.9 ? 'PASS' : 'MISS'}; unmetered hop / direct ${fmt(h.mbps50 / d.mbps50, 2)}x, egress / unmetered hop ${fmt(e.mbps50 / h.mbps50, 2)}x (what reading usage costs)`,
        `load average before / after: ${loadBefore} / ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
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
