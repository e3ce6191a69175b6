// npm run bench:executable: how the sidecar is shipped, in one run, alternating: the single
// executable (npm run build:sea), the package's bin, which runs the bundle dist/agent-sidecar.cjs
// (npm run build), and the same CLI from the compiled modules of dist/ with node_modules beside
// them (dist/cli/entry.js, what bin ran before the bundle): how long `run` takes from spawn to
// answering /healthz, and its resident memory (VmRSS and the anonymous part) once started and
// after 5,000 proxied requests. Ratios are against the modules. Same configuration for all:
// telemetry on (no collector: its exports fail quietly), auth off, a Node.js upstream on loopback.
//
//   node bench/executable.ts [--runs 7] [--requests 5000]
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { freePort, HOST, waitFor200 } from './lib/net.ts';
import { treeAnonBytes, treeRssBytes } from './lib/proc.ts';
import { installCleanup, startChild, stopChild } from './lib/procs.ts';
import { SIDECAR_BIN } from './lib/servers.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const EXECUTABLE = join(REPO, 'dist', `agent-sidecar-${process.platform}-${process.arch}`);
const MODULES = join(REPO, 'dist', 'cli', 'entry.js');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, requests: { type: 'string', default: '5000' } } });
const RUNS = Number(values.runs);
const REQUESTS = Number(values.requests);

for (const [what, file] of [
  ['npm run build:sea', EXECUTABLE],
  ['npm run build', join(REPO, 'dist', 'agent-sidecar.cjs')],
  ['npm run build', MODULES],
] as const) {
  if (!existsSync(file)) throw new Error(`${file} is missing: ${what} makes it`);
}
installCleanup();

const upstream = http.createServer((_req, res) => res.end('ok\n'));
upstream.listen(0, HOST);
await once(upstream, 'listening');
const upstreamUrl = `http://${HOST}:${(upstream.address() as { port: number }).port}`;
const dir = mkdtempSync(join(tmpdir(), 'agent-sidecar-bench-executable-'));

interface Sample {
  startMs: number;
  rssStart: number;
  anonStart: number;
  rssLoaded: number;
  anonLoaded: number;
}
const TARGETS = [
  { name: 'single executable', command: EXECUTABLE, args: [] as string[] },
  { name: 'bin (bundle)', command: process.execPath, args: [SIDECAR_BIN] },
  { name: 'dist/ modules', command: process.execPath, args: [MODULES] },
];
const samples = new Map<string, Sample[]>(TARGETS.map((t) => [t.name, []]));

try {
  for (let run = 0; run <= RUNS; run++) {
    // Run 0 warms the page cache for all and is not counted.
    for (const t of run % 2 === 0 ? TARGETS : [...TARGETS].reverse()) {
      const s = await measure(t.command, t.args);
      if (run > 0) samples.get(t.name)!.push(s);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  const rows: Array<[string, (s: Sample) => number, (v: number) => string]> = [
    ['spawn to /healthz 200 (ms)', (s) => s.startMs, (v) => v.toFixed(0)],
    ['VmRSS started (MB)', (s) => s.rssStart, mb],
    ['  of which anonymous', (s) => s.anonStart, mb],
    [`VmRSS after ${REQUESTS} requests (MB)`, (s) => s.rssLoaded, mb],
    ['  of which anonymous', (s) => s.anonLoaded, mb],
  ];
  const base = TARGETS.at(-1)!;
  process.stdout.write(`medians of ${RUNS} runs each, alternating; ratios against ${base.name}\n`);
  process.stdout.write(`${'figure'.padEnd(36)}${TARGETS.map((t) => t.name.padStart(26)).join('')}\n`);
  for (const [label, pick, fmt] of rows) {
    const [values, baseline] = [TARGETS.map((t) => median(samples.get(t.name)!.map(pick))), median(samples.get(base.name)!.map(pick))];
    const cells = values.map((v, i) => (i === TARGETS.length - 1 ? fmt(v) : `${fmt(v)} (${(v / baseline).toFixed(2)}x)`).padStart(26));
    process.stdout.write(`${label.padEnd(36)}${cells.join('')}\n`);
  }
} finally {
  upstream.close();
  rmSync(dir, { recursive: true, force: true });
}

async function measure(command: string, args: string[]): Promise<Sample> {
  const [port, admin] = [await freePort(), await freePort()];
  const config = join(dir, 'sidecar.yaml');
  writeFileSync(
    config,
    `listen: { address: "${HOST}:${port}" }\nadmin: { address: "${HOST}:${admin}" }\negress: { address: "${HOST}:0" }\nupstream: { url: "${upstreamUrl}" }\ntelemetry: { logs: { stdout: false } }\nlog: { level: warn }\n`,
  );
  const started = performance.now();
  const child = startChild('sidecar', command, [...args, 'run', '--config', config], { env: { PATH: process.env.PATH, HOME: dir } });
  try {
    await waitFor200(`http://${HOST}:${admin}/healthz`, child);
    const startMs = performance.now() - started;
    const pid = child.proc.pid!;
    const [rssStart, anonStart] = [treeRssBytes(pid), treeAnonBytes(pid)];
    const pool = new Pool(`http://${HOST}:${port}`, { connections: 16 });
    let sent = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < REQUESTS) {
          sent++;
          const r = await pool.request({ path: '/', method: 'GET' });
          await r.body.text();
          if (r.statusCode !== 200) throw new Error(`the sidecar answered ${r.statusCode}`);
        }
      }),
    );
    await pool.close();
    return { startMs, rssStart, anonStart, rssLoaded: treeRssBytes(pid), anonLoaded: treeAnonBytes(pid) };
  } finally {
    await stopChild(child);
  }
}
