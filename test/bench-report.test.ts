import { describe, expect, it } from 'vitest';
import type { RunMeta } from '../bench/lib/meta.ts';
import type { TargetName } from '../bench/lib/options.ts';
import { checkValue, compare, coresPer1000Rps, emptyMeasurements, render, TARGETS, type Check, type Measurements } from '../bench/lib/report.ts';
import { summarizeSoak } from '../bench/lib/soak.ts';
import type { StreamResult } from '../bench/lib/sse.ts';
import { slope } from '../bench/lib/stats.ts';
import { performanceTable, type ScenarioRun } from '../bench/lib/summary.ts';
import type { RateResult } from '../bench/lib/vegeta.ts';
import type { SaturationResult } from '../bench/lib/wrk.ts';

const MB = 1024 * 1024;

function sat(rps: number): SaturationResult {
  return {
    requests: rps * 10,
    durationSeconds: 10,
    requestsPerSecond: rps,
    latencyUs: { mean: 1, p50: 1, p90: 1, p99: 1, p999: 1, max: 1 },
    errors: { connect: 0, read: 0, write: 0, timeout: 0, status: 0 },
  };
}

function rate(p50: number, p99: number): RateResult {
  return {
    requests: 10_000,
    durationSeconds: 10,
    rate: 1000,
    throughput: 1000,
    success: 1,
    statusCodes: { '200': 10_000 },
    errors: [],
    latencyUs: { mean: p50, p50, p90: p99, p99, p999: p99 * 2, max: p99 * 3 },
  };
}

/** A run of the full scenario: nginx adds 100/400 µs, sidecar-full 120/500 µs; the given req/s, CPU seconds and RSS at the rate. */
function fullRun(o: { full: number; nginx: number; oauth2: number; cpu: number; rssMb: number }): Measurements {
  const m = emptyMeasurements();
  m.saturation = { direct: sat(60_000), nginx: sat(o.nginx), 'oauth2-proxy': sat(o.oauth2), 'sidecar-full': sat(o.full) };
  m.rate = { direct: rate(200, 600), nginx: rate(300, 1000), 'oauth2-proxy': rate(900, 3000), 'sidecar-full': rate(320, 1100) };
  m.cpuSeconds.rate = { nginx: 0.5, 'oauth2-proxy': 3, 'sidecar-full': o.cpu };
  m.rssBytes.rate = { nginx: 13 * MB, 'oauth2-proxy': 40 * MB, 'sidecar-full': o.rssMb * MB };
  return m;
}

const byId = (checks: Check[], id: Check['id']) => checks.find((c) => c.id === id);

describe('bench figures', () => {
  it('turns CPU seconds into cores per 1000 req/s', () => {
    // 0.8 CPU seconds over 10 s at 1000 req/s: 0.08 cores for each 1000 req/s.
    expect(coresPer1000Rps(0.8, 10, 1000)).toBeCloseTo(0.08, 10);
    expect(coresPer1000Rps(0.8, 10, 2000)).toBeCloseTo(0.04, 10);
    expect(coresPer1000Rps(undefined, 10, 1000)).toBeUndefined();
    expect(coresPer1000Rps(1, 0, 1000)).toBeUndefined();
  });

  it('fits a least-squares slope, and has none without two distinct points', () => {
    expect(
      slope([
        { x: 0, y: 1 },
        { x: 1, y: 3 },
        { x: 2, y: 5 },
      ]),
    ).toBeCloseTo(2, 10);
    expect(
      slope([
        { x: 0, y: 5 },
        { x: 1, y: 5 },
      ]),
    ).toBe(0);
    expect(slope([{ x: 1, y: 5 }])).toBeUndefined();
    expect(
      slope([
        { x: 1, y: 5 },
        { x: 1, y: 6 },
      ]),
    ).toBeUndefined();
  });

  it('formats each check value with its unit', () => {
    expect(checkValue({ id: 'full-saturation', value: 0.456 })).toBe('0.46x');
    expect(checkValue({ id: 'cpu-cores', value: 0.0812 })).toBe('0.081 cores');
    expect(checkValue({ id: 'rss', value: 64.25 })).toBe('64.3 MB');
    expect(checkValue({ id: 'soak-rss-slope', value: 0.4 })).toBe('0.40 MB/min');
    expect(checkValue({ id: 'telemetry-added-p50', value: 120.4 })).toBe('120 µs');
    expect(checkValue({ id: 'rss', value: undefined })).toBe('n/a');
  });
});

describe('bench verdicts', () => {
  it('passes the full chain, CPU, RSS and peer targets when the figures meet them', () => {
    const cmp = compare(fullRun({ full: 30_000, nginx: 60_000, oauth2: 10_000, cpu: 0.9, rssMb: 80 }), { subject: 'sidecar-full' });
    expect(cmp.saturation.fullVsNginx).toBeCloseTo(0.5, 10);
    expect(byId(cmp.checks, 'full-saturation')?.pass).toBe(true);
    // Added over direct: sidecar-full 120/500 µs against nginx's 100/400.
    expect(cmp.rate.fullAddedVsNginxAdded.p50).toBeCloseTo(1.2, 10);
    expect(cmp.rate.fullAddedVsNginxAdded.p99).toBeCloseTo(1.25, 10);
    expect(byId(cmp.checks, 'full-added-p50')?.pass).toBe(true);
    expect(byId(cmp.checks, 'full-added-p99')?.pass).toBe(true);
    expect(byId(cmp.checks, 'cpu-cores')?.value).toBeCloseTo(0.09, 10);
    expect(byId(cmp.checks, 'cpu-cores')?.pass).toBe(true);
    expect(byId(cmp.checks, 'rss')).toMatchObject({ value: 80, pass: true, limit: TARGETS.rssMb });
  });

  it('misses them when the figures do not, and names the limits', () => {
    const cmp = compare(fullRun({ full: 20_000, nginx: 60_000, oauth2: 10_000, cpu: 1.5, rssMb: 140 }), { subject: 'sidecar-full' });
    expect(byId(cmp.checks, 'full-saturation')).toMatchObject({ pass: false, limit: TARGETS.fullSaturationVsNginx, op: '>=' });
    expect(byId(cmp.checks, 'cpu-cores')).toMatchObject({ pass: false, limit: TARGETS.coresPer1000Rps, op: '<=' });
    expect(byId(cmp.checks, 'rss')?.pass).toBe(false);
  });

  it('checks CPU and RSS only on the subject, and not at all without one', () => {
    const m = fullRun({ full: 30_000, nginx: 60_000, oauth2: 10_000, cpu: 0.9, rssMb: 80 });
    expect(byId(compare(m).checks, 'cpu-cores')).toBeUndefined();
    expect(byId(compare(m, { subject: 'sidecar-auth' }).checks, 'rss')).toBeUndefined();
  });

  it('compares sidecar-auth with oauth2-proxy on saturation req/s', () => {
    const m = emptyMeasurements();
    m.saturation = { 'oauth2-proxy': sat(4000), 'sidecar-auth': sat(5000) };
    const check = byId(compare(m).checks, 'oauth2-proxy-saturation');
    expect(check?.value).toBeCloseTo(1.25, 10);
    expect(check?.pass).toBe(true);
    m.saturation['sidecar-auth'] = sat(3000);
    expect(byId(compare(m).checks, 'oauth2-proxy-saturation')?.pass).toBe(false);
  });

  it('has a ratio against each peer that ran, for each sidecar target', () => {
    const cmp = compare(fullRun({ full: 30_000, nginx: 60_000, oauth2: 10_000, cpu: 0.9, rssMb: 80 }));
    expect(cmp.peers.map((p) => `${p.target}/${p.peer}`)).toEqual(['sidecar-full/nginx', 'sidecar-full/oauth2-proxy']);
    const vsOauth2 = cmp.peers[1]!;
    expect(vsOauth2.rps).toBeCloseTo(3, 10);
    // oauth2-proxy adds 700/2400 µs.
    expect(vsOauth2.addedP50).toBeCloseTo(120 / 700, 10);
    expect(vsOauth2.cpu).toBeCloseTo(0.9 / 3, 10);
    expect(vsOauth2.rss).toBeCloseTo(2, 10);
  });

  it('compares each sidecar target with agentgateway too: latency, cores and memory at the rate and saturated', () => {
    const m = fullRun({ full: 30_000, nginx: 60_000, oauth2: 10_000, cpu: 0.9, rssMb: 80 });
    m.saturation.agentgateway = sat(20_000);
    // agentgateway adds 100/400 µs over direct (200/600); max 3000.
    m.rate.agentgateway = rate(300, 1000);
    m.cpuSeconds.rate.agentgateway = 0.6;
    m.rssBytes.rate.agentgateway = 20 * MB;
    m.anonBytes.rate = { 'sidecar-full': 60 * MB, agentgateway: 10 * MB };
    m.rssBytes.saturation = { 'sidecar-full': 120 * MB, agentgateway: 30 * MB };
    m.anonBytes.saturation = { 'sidecar-full': 100 * MB, agentgateway: 20 * MB };
    const cmp = compare(m);
    expect(cmp.peers.map((p) => `${p.target}/${p.peer}`)).toEqual(['sidecar-full/nginx', 'sidecar-full/oauth2-proxy', 'sidecar-full/agentgateway']);
    const vs = cmp.peers[2]!;
    expect(vs.rps).toBeCloseTo(1.5, 10);
    expect(vs.p50).toBeCloseTo(320 / 300, 10);
    expect(vs.p99).toBeCloseTo(1100 / 1000, 10);
    expect(vs.max).toBeCloseTo(3300 / 3000, 10);
    expect(vs.addedP50).toBeCloseTo(1.2, 10);
    expect(vs.addedP99).toBeCloseTo(1.25, 10);
    expect(vs.cores).toBeCloseTo(1.5, 10);
    expect(vs.cpu).toBeCloseTo(1.5, 10);
    expect(vs.rss).toBeCloseTo(4, 10);
    expect(vs.anon).toBeCloseTo(6, 10);
    expect(vs.rssSaturated).toBeCloseTo(4, 10);
    expect(vs.anonSaturated).toBeCloseTo(5, 10);
    // No target is set against agentgateway: ratios only.
    expect(cmp.checks.some((c) => c.name.includes('agentgateway'))).toBe(false);
    // A figure a peer lacks is n/a, not a ratio.
    expect(cmp.peers[0]!.anon).toBeUndefined();
  });

  it('prints a row per sidecar target and peer, agentgateway among them, and what its own receiver got', () => {
    const m = emptyMeasurements();
    m.saturation = { direct: sat(60_000), nginx: sat(40_000), agentgateway: sat(20_000), sidecar: sat(10_000) };
    m.rate = { direct: rate(200, 600), nginx: rate(300, 1000), agentgateway: rate(400, 1200), sidecar: rate(500, 1500) };
    m.cpuSeconds.rate = { nginx: 0.5, agentgateway: 1, sidecar: 1.5 };
    m.rssBytes.rate = { nginx: 13 * MB, agentgateway: 20 * MB, sidecar: 130 * MB };
    m.anonBytes.rate = { nginx: 4 * MB, agentgateway: 10 * MB, sidecar: 80 * MB };
    m.rssBytes.saturation = { nginx: 13 * MB, agentgateway: 25 * MB, sidecar: 150 * MB };
    m.anonBytes.saturation = { nginx: 4 * MB, agentgateway: 12.5 * MB, sidecar: 100 * MB };
    const order: TargetName[] = ['direct', 'nginx', 'agentgateway', 'sidecar'];
    const note = {
      signals: ['traces'],
      phases: [{ phase: 'rate' as const, requests: 10_000, spans: 10_000, logRecords: 0, metricExports: 0, benchCpuPercent: 12 }],
      dropped: {},
    };
    const text = render(m, compare(m), order, { saturation: 'S', rate: 'R' }, { peerTelemetry: [{ target: 'agentgateway', what: 'traces', note }] });
    expect(text).toMatch(/sidecar target \/ peer\s+req\/s\s+p50\s+p99\s+max\s+\+p50\s+\+p99\s+cores\s+RSS\s+anon\s+RSS sat\s+anon sat/);
    // req/s 0.5x; p50 500/400, p99 1500/1200, max 4500/3600; added 300/200 and 900/600; cores 1.5; RSS 6.5, anon 8, saturated 6 and 8.
    expect(text).toMatch(/sidecar \/ agentgateway\s+0\.50x\s+1\.25x\s+1\.25x\s+1\.25x\s+1\.50x\s+1\.50x\s+1\.50x\s+6\.50x\s+8\.00x\s+6\.00x\s+8\.00x/);
    expect(text).toMatch(/sidecar \/ nginx\s+0\.25x/);
    expect(text).toMatch(/^agentgateway\s+20,000/m);
    expect(text).toContain('agentgateway (traces):');
    expect(text).toContain('the receiver got 10,000 spans');
  });

  it('is n/a, not a pass, when nginx added nothing', () => {
    const m = fullRun({ full: 30_000, nginx: 60_000, oauth2: 10_000, cpu: 0.9, rssMb: 80 });
    m.rate.nginx = rate(200, 600);
    const check = byId(compare(m).checks, 'full-added-p50');
    expect(check?.value).toBeUndefined();
    expect(check?.pass).toBeUndefined();
  });

  it('checks the soak: largest RSS and slope', () => {
    const m = emptyMeasurements();
    const samples = [0, 10, 20, 30, 40, 50, 60].map((s, i) => ({ atSeconds: s, bytes: (70 + i * 0.1) * MB }));
    m.soak = summarizeSoak({ target: 'sidecar-full', minutes: 1, rate: 1000, sampleSeconds: 10 }, samples, {
      requests: 60_000,
      success: 1,
      latencyUs: { p50: 300, p99: 900 },
    });
    expect(m.soak.firstBytes).toBe(70 * MB);
    expect(m.soak.maxBytes).toBeCloseTo(70.6 * MB, 0);
    // 0.1 MB every 10 s: 0.6 MB a minute.
    expect(m.soak.slopeMbPerMinute).toBeCloseTo(0.6, 6);
    const checks = compare(m).checks;
    expect(byId(checks, 'soak-rss-slope')?.pass).toBe(true);
    expect(byId(checks, 'soak-rss-max')?.pass).toBe(true);
    const growing = samples.map((s, i) => ({ ...s, bytes: (70 + i) * MB }));
    m.soak = summarizeSoak({ target: 'sidecar-full', minutes: 1, rate: 1000, sampleSeconds: 10 }, growing, {
      requests: 60_000,
      success: 1,
      latencyUs: { p50: 300, p99: 900 },
    });
    expect(byId(compare(m).checks, 'soak-rss-slope')?.pass).toBe(false);
  });

  it('refuses a soak without samples', () => {
    expect(() =>
      summarizeSoak({ target: 'sidecar', minutes: 1, rate: 1000, sampleSeconds: 10 }, [], { requests: 0, success: 0, latencyUs: { p50: 0, p99: 0 } }),
    ).toThrow(/no RSS sample/);
  });
});

function stream(eventsPerSecond: number, ttfeP50: number, totalP50: number): StreamResult {
  const p = (v: number) => ({ p50: v, p90: v * 2, p99: v * 3, p999: v * 4, max: v * 5 });
  return {
    streams: 100,
    durationSeconds: 10,
    streamsPerSecond: 10,
    eventsPerSecond,
    errors: { status: 0, short: 0, error: 0 },
    ttfeUs: p(ttfeP50),
    totalUs: p(totalP50),
  };
}

describe('bench SSE comparison and tables', () => {
  const m = emptyMeasurements();
  m.streams = { direct: stream(100_000, 1000, 9000), nginx: stream(80_000, 1200, 10_000), sidecar: stream(60_000, 1500, 12_000) };
  m.cpuSeconds.streams = { nginx: 0.5, sidecar: 1.2 };

  it('adds stream times over direct and compares events/s', () => {
    const cmp = compare(m);
    expect(cmp.streams.addedUs.sidecar).toEqual({ ttfeP50: 500, ttfeP99: 1500, totalP50: 3000, totalP99: 9000 });
    expect(cmp.streams.eventsVsDirect.sidecar).toBeCloseTo(0.6, 10);
    expect(cmp.streams.eventsVsNginx.sidecar).toBeCloseTo(0.75, 10);
    expect(cmp.checks).toEqual([]);
  });

  it('prints the stream table and says that no target applies', () => {
    const text = render(m, compare(m), ['direct', 'nginx', 'sidecar'], { saturation: 'S', rate: 'R', streams: 'Streams:' });
    expect(text).toContain('Streams:');
    expect(text).toMatch(/sidecar\s+100\s+10\.0\s+60,000/);
    // 1.2 CPU seconds for 600,000 events.
    expect(text).toContain('sidecar 2.00 ms');
    expect(text).toContain('No target applies');
    expect(text).not.toContain('Saturation');
  });

  it('makes the Performance table from every scenario, with the skipped ones named', () => {
    const full = fullRun({ full: 30_000, nginx: 60_000, oauth2: 10_000, cpu: 0.9, rssMb: 80 });
    const runs: ScenarioRun[] = [
      {
        scenario: 'full',
        targets: ['direct', 'nginx', 'oauth2-proxy', 'sidecar-full'] as TargetName[],
        startedAt: '',
        finishedAt: '',
        measurements: full,
        comparison: compare(full, { subject: 'sidecar-full' }),
      },
      { scenario: 'sse', targets: ['direct', 'nginx', 'sidecar'] as TargetName[], startedAt: '', finishedAt: '', measurements: m, comparison: compare(m) },
    ];
    const meta: RunMeta = {
      node: 'v24',
      nginx: 'nginx/1',
      wrk: 'wrk 4',
      vegeta: 'v12',
      cpuModel: 'cpu',
      cpus: 2,
      kernel: 'Linux',
      loadAverage: [0.1],
      gitCommit: 'abc',
    };
    const text = performanceTable(runs, [{ scenario: 'protect', reason: 'needs the protection engine' }], {
      meta,
      options: { rate: 1000, saturationSeconds: 10, rateSeconds: 10, threads: 2, connections: 64, streams: 8, events: 1000, source: false, cpuProfile: false },
      pinning: 'no CPU pinning',
    });
    expect(text).toContain('| (c) full | sidecar-full | 30,000 | 320 | 1,100 | 2,200 | +120 | +500 | 0.090 | 80.0 |');
    expect(text).toContain('| (e) sse | sidecar | 60,000 |');
    expect(text).toMatch(/\| \(c\) full \| saturation: sidecar-full .* target ≥ 0\.45x \| 0\.50x \| PASS \|/);
    expect(text).toContain('(d) protect: not measured: needs the protection engine.');
    expect(text).toContain('The sidecar as deployed: bin/agent-sidecar.js');
  });
});
