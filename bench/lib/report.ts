import type { TargetName } from './options.ts';
import { ratio } from './stats.ts';
import type { RateResult } from './vegeta.ts';
import { errorCount, type SaturationResult } from './wrk.ts';

export interface Measurements {
  saturation: Partial<Record<TargetName, SaturationResult>>;
  rate: Partial<Record<TargetName, RateResult>>;
  /** CPU seconds each server (with its worker processes) used during each measured phase. */
  cpuSeconds: { saturation: Partial<Record<TargetName, number>>; rate: Partial<Record<TargetName, number>> };
}

/** CPU milliseconds per 1000 requests of a target in a phase. */
export function cpuPerThousand(m: Measurements, phase: 'saturation' | 'rate', t: TargetName): number | undefined {
  const cpu = m.cpuSeconds[phase][t];
  const requests = m[phase][t]?.requests;
  return cpu === undefined || !requests ? undefined : (cpu / requests) * 1e6;
}

function cpuLine(m: Measurements, phase: 'saturation' | 'rate', order: readonly TargetName[]): string[] {
  const parts = order.flatMap((t) => {
    const v = cpuPerThousand(m, phase, t);
    return v === undefined ? [] : [`${t} ${v.toFixed(1)} ms`];
  });
  return parts.length === 0 ? [] : [`  CPU per 1000 requests (the server process and its workers): ${parts.join(' · ')}`];
}

/** A target from the issue, checked against a measured figure. */
export interface Check {
  id: 'saturation' | 'added-p50' | 'added-p99' | 'auth-saturation' | 'telemetry-saturation' | 'telemetry-added-p50';
  name: string;
  value: number | undefined;
  op: '>=' | '<=';
  limit: number;
  /** undefined when a figure it needs is missing or meaningless (for example nginx added ≤ 0). */
  pass: boolean | undefined;
}

type Hop = Exclude<TargetName, 'direct'>;
type Pcts = { p50?: number | undefined; p99?: number | undefined; p999?: number | undefined };

/** How the floor (undici-proxy / nginx) compares with a target set against nginx. */
export interface FloorNote {
  id: 'saturation' | 'added-p50' | 'added-p99';
  value: number | undefined;
  /** Whether the bare Node proxy itself meets the target; undefined when not measurable. */
  reachable: boolean | undefined;
}

export interface Comparison {
  saturation: {
    sidecarVsNginx?: number | undefined;
    sidecarVsDirect?: number | undefined;
    nginxVsDirect?: number | undefined;
    sidecarVsUndiciProxy?: number | undefined;
    undiciProxyVsNginx?: number | undefined;
    undiciProxyVsDirect?: number | undefined;
    /** sidecar-auth / sidecar (auth on / auth off). */
    authVsNoAuth?: number | undefined;
    /** sidecar-telemetry / sidecar (telemetry on / off). */
    telemetryVsOff?: number | undefined;
  };
  rate: {
    /** Latency a hop adds over direct at the same rate, in µs. */
    addedUs: Partial<Record<Hop, { p50: number; p99: number; p999: number }>>;
    /** Sidecar-added / nginx-added. */
    sidecarAddedVsNginxAdded: Pcts;
    /** Sidecar-added / undici-proxy-added. */
    sidecarAddedVsUndiciProxyAdded: Pcts;
    /** Undici-proxy-added / nginx-added: the floor. */
    undiciProxyAddedVsNginxAdded: Pcts;
    /** Latency auth adds: sidecar-auth minus sidecar, in µs. */
    authAddedUs?: { p50: number; p99: number; p999: number } | undefined;
    /** Latency telemetry adds: sidecar-telemetry minus sidecar, in µs. */
    telemetryAddedUs?: { p50: number; p99: number; p999: number } | undefined;
  };
  /** The floor against each nginx target: can any Node proxy reach it here? */
  floor: FloorNote[];
  checks: Check[];
}

export const TARGETS = { saturationVsNginx: 0.55, addedVsNginx: 1.5, authVsNoAuth: 0.9, telemetryVsOff: 0.9, telemetryAddedP50Us: 200 } as const;

export function compare(m: Measurements): Comparison {
  const s = m.saturation;
  const rps = (t: TargetName) => s[t]?.requestsPerSecond ?? Number.NaN;
  const saturation = {
    sidecarVsNginx: ratio(rps('sidecar'), rps('nginx')),
    sidecarVsDirect: ratio(rps('sidecar'), rps('direct')),
    nginxVsDirect: ratio(rps('nginx'), rps('direct')),
    sidecarVsUndiciProxy: ratio(rps('sidecar'), rps('undici-proxy')),
    undiciProxyVsNginx: ratio(rps('undici-proxy'), rps('nginx')),
    undiciProxyVsDirect: ratio(rps('undici-proxy'), rps('direct')),
    authVsNoAuth: ratio(rps('sidecar-auth'), rps('sidecar')),
    telemetryVsOff: ratio(rps('sidecar-telemetry'), rps('sidecar')),
  };
  const direct = m.rate.direct;
  const addedUs: Comparison['rate']['addedUs'] = {};
  for (const hop of ['nginx', 'undici-proxy', 'sidecar', 'sidecar-auth', 'sidecar-telemetry'] as const) {
    const r = m.rate[hop];
    if (r === undefined || direct === undefined) continue;
    addedUs[hop] = {
      p50: r.latencyUs.p50 - direct.latencyUs.p50,
      p99: r.latencyUs.p99 - direct.latencyUs.p99,
      p999: r.latencyUs.p999 - direct.latencyUs.p999,
    };
  }
  const vs = (a: Hop, b: Hop): Pcts => {
    const x = addedUs[a];
    const y = addedUs[b];
    return x && y ? { p50: ratio(x.p50, y.p50), p99: ratio(x.p99, y.p99), p999: ratio(x.p999, y.p999) } : {};
  };
  const added = vs('sidecar', 'nginx');
  const floorAdded = vs('undici-proxy', 'nginx');
  const off = m.rate.sidecar;
  const over = (on: RateResult | undefined) =>
    on && off ? { p50: on.latencyUs.p50 - off.latencyUs.p50, p99: on.latencyUs.p99 - off.latencyUs.p99, p999: on.latencyUs.p999 - off.latencyUs.p999 } : undefined;
  const authAddedUs = over(m.rate['sidecar-auth']);
  const telemetryAddedUs = over(m.rate['sidecar-telemetry']);

  // A check is listed only when the targets it compares were measured.
  const ran = (...t: TargetName[]) => t.every((n) => s[n] !== undefined || m.rate[n] !== undefined);
  const checks: Check[] = [];
  if (ran('nginx', 'sidecar')) {
    checks.push(
      check('saturation', 'saturation: sidecar req/s vs nginx', saturation.sidecarVsNginx, '>=', TARGETS.saturationVsNginx),
      check('added-p50', `${rateLabel(m)}: sidecar added p50 vs nginx added`, added.p50, '<=', TARGETS.addedVsNginx),
      check('added-p99', `${rateLabel(m)}: sidecar added p99 vs nginx added`, added.p99, '<=', TARGETS.addedVsNginx),
    );
  }
  if (ran('sidecar', 'sidecar-auth')) {
    checks.push(check('auth-saturation', 'saturation: sidecar-auth req/s vs sidecar (auth off)', saturation.authVsNoAuth, '>=', TARGETS.authVsNoAuth));
  }
  if (ran('sidecar', 'sidecar-telemetry')) {
    checks.push(
      check('telemetry-saturation', 'saturation: sidecar-telemetry req/s vs sidecar (telemetry off)', saturation.telemetryVsOff, '>=', TARGETS.telemetryVsOff),
      check('telemetry-added-p50', `${rateLabel(m)}: p50 telemetry adds (µs)`, telemetryAddedUs?.p50, '<=', TARGETS.telemetryAddedP50Us),
    );
  }
  const floor: FloorNote[] = [];
  if (ran('nginx', 'undici-proxy')) {
    const note = (id: FloorNote['id'], value: number | undefined, op: '>=' | '<=', limit: number): FloorNote => ({
      id,
      value,
      reachable: value === undefined ? undefined : op === '>=' ? value >= limit : value <= limit,
    });
    floor.push(
      note('saturation', saturation.undiciProxyVsNginx, '>=', TARGETS.saturationVsNginx),
      note('added-p50', floorAdded.p50, '<=', TARGETS.addedVsNginx),
      note('added-p99', floorAdded.p99, '<=', TARGETS.addedVsNginx),
    );
  }
  return {
    saturation,
    rate: {
      addedUs,
      sidecarAddedVsNginxAdded: added,
      sidecarAddedVsUndiciProxyAdded: vs('sidecar', 'undici-proxy'),
      undiciProxyAddedVsNginxAdded: floorAdded,
      authAddedUs,
      telemetryAddedUs,
    },
    floor,
    checks,
  };
}

function rateLabel(m: Measurements): string {
  const r = m.rate.direct ?? m.rate.nginx ?? m.rate.sidecar;
  return r ? `at ${Math.round(r.rate)} req/s` : 'at constant rate';
}

function check(id: Check['id'], name: string, value: number | undefined, op: Check['op'], limit: number): Check {
  const pass = value === undefined ? undefined : op === '>=' ? value >= limit : value <= limit;
  return { id, name, value, op, limit, pass };
}

// ---- printing ---------------------------------------------------------------------------

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function us(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '-' : int.format(Math.round(v));
}

function signedUs(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  return `${v >= 0 ? '+' : '−'}${int.format(Math.abs(Math.round(v)))}`;
}

export function x(v: number | undefined): string {
  return v === undefined ? 'n/a' : `${v.toFixed(2)}x`;
}

function verdict(c: Check | undefined): string {
  if (c === undefined) return '';
  return c.pass === undefined ? 'n/a' : c.pass ? 'PASS' : 'MISS';
}

/** Right-aligns every column but the first. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('   ').trimEnd()).join('\n');
}

export interface Header {
  saturation: string;
  rate: string;
}

/** What only some scenarios print. */
export interface Extra {
  /** --scenario telemetry: the signals and what sidecar-telemetry exported while measured. */
  telemetry?: TelemetryNote | undefined;
}

export interface TelemetryNote {
  signals: readonly string[];
  /** Per measured phase of sidecar-telemetry: what reached the receiver and the CPU the bench process (the receiver) used. */
  phases: Array<{ phase: 'saturation' | 'rate'; requests: number; spans: number; logRecords: number; metricExports: number; benchCpuPercent: number }>;
  /** agent_telemetry_dropped at the end, per signal/reason, as last exported. */
  dropped: Record<string, number>;
}

export function render(m: Measurements, cmp: Comparison, order: readonly TargetName[], header: Header, extra: Extra = {}): string {
  const out: string[] = [];
  const has = (...t: TargetName[]) => t.every((n) => order.includes(n));
  const satRows = [['target', 'req/s', 'p50', 'p99', 'p99.9', 'max', 'errors']];
  for (const t of order) {
    const r = m.saturation[t];
    if (!r) continue;
    const l = r.latencyUs;
    satRows.push([t, int.format(r.requestsPerSecond), us(l.p50), us(l.p99), us(l.p999), us(l.max), int.format(errorCount(r.errors))]);
  }
  out.push(header.saturation, table(satRows), ...cpuLine(m, 'saturation', order), '');
  const checkFor = (id: Check['id']) => cmp.checks.find((c) => c.id === id);
  const sat = cmp.saturation;
  const satRatios: string[][] = [];
  if (has('nginx', 'sidecar')) satRatios.push(['  sidecar / nginx', x(sat.sidecarVsNginx), `target ≥ ${TARGETS.saturationVsNginx}x`, verdict(checkFor('saturation'))]);
  if (has('undici-proxy', 'sidecar')) satRatios.push(['  sidecar / undici-proxy', x(sat.sidecarVsUndiciProxy), '', '']);
  if (has('nginx', 'undici-proxy')) satRatios.push(['  undici-proxy / nginx (floor)', x(sat.undiciProxyVsNginx), '', '']);
  if (has('direct', 'sidecar')) satRatios.push(['  sidecar / direct', x(sat.sidecarVsDirect), '', '']);
  if (has('direct', 'undici-proxy')) satRatios.push(['  undici-proxy / direct', x(sat.undiciProxyVsDirect), '', '']);
  if (has('direct', 'nginx')) satRatios.push(['  nginx / direct', x(sat.nginxVsDirect), '', '']);
  if (satRatios.length > 0) out.push(table(satRatios), '');

  const rateRows = [['target', 'sent/s', 'ok', 'p50', 'p90', 'p99', 'p99.9', 'max', '+p50', '+p99', '+p99.9']];
  for (const t of order) {
    const r = m.rate[t];
    if (!r) continue;
    const l = r.latencyUs;
    const a = t === 'direct' ? undefined : cmp.rate.addedUs[t];
    rateRows.push([
      t,
      r.rate.toFixed(1),
      `${(r.success * 100).toFixed(r.success === 1 ? 0 : 2)}%`,
      us(l.p50),
      us(l.p90),
      us(l.p99),
      us(l.p999),
      us(l.max),
      signedUs(a?.p50),
      signedUs(a?.p99),
      signedUs(a?.p999),
    ]);
  }
  out.push(header.rate, table(rateRows), '  (+pNN: added latency vs direct at the same percentile)', ...cpuLine(m, 'rate', order), '');
  const a = cmp.rate.sidecarAddedVsNginxAdded;
  const u = cmp.rate.sidecarAddedVsUndiciProxyAdded;
  const f = cmp.rate.undiciProxyAddedVsNginxAdded;
  const rateRatios: string[][] = [];
  if (has('nginx', 'sidecar')) {
    rateRatios.push(
      ['  sidecar added / nginx added, p50', x(a.p50), `target ≤ ${TARGETS.addedVsNginx}x`, verdict(checkFor('added-p50'))],
      ['  sidecar added / nginx added, p99', x(a.p99), `target ≤ ${TARGETS.addedVsNginx}x`, verdict(checkFor('added-p99'))],
      ['  sidecar added / nginx added, p99.9', x(a.p999), '', ''],
    );
  }
  if (has('undici-proxy', 'sidecar')) {
    rateRatios.push(
      ['  sidecar added / undici-proxy added, p50', x(u.p50), '', ''],
      ['  sidecar added / undici-proxy added, p99', x(u.p99), '', ''],
      ['  sidecar added / undici-proxy added, p99.9', x(u.p999), '', ''],
    );
  }
  if (has('nginx', 'undici-proxy')) {
    rateRatios.push(
      ['  undici-proxy added / nginx added, p50 (floor)', x(f.p50), '', ''],
      ['  undici-proxy added / nginx added, p99 (floor)', x(f.p99), '', ''],
    );
  }
  if (rateRatios.length > 0) out.push(table(rateRatios), '');

  if (cmp.floor.length > 0) out.push(...floorLines(cmp), '');
  if (has('sidecar', 'sidecar-auth')) out.push(...authLines(m, cmp, checkFor('auth-saturation')), '');
  if (has('sidecar', 'sidecar-telemetry')) out.push(...telemetryLines(m, cmp, checkFor('telemetry-saturation'), checkFor('telemetry-added-p50'), extra.telemetry), '');

  const failed = cmp.checks.filter((c) => c.pass !== true);
  out.push(failed.length === 0 ? 'All targets met.' : `Targets not met or not measurable: ${failed.map((c) => `${c.name} (${verdict(c)})`).join('; ')}.`);
  return out.join('\n');
}

/**
 * undici-proxy does nothing but forward, so its ratio to nginx is the best any Node.js proxy
 * can expect on this machine: a target against nginx that the floor misses is out of reach
 * for the sidecar too, whatever it is optimised to.
 */
function floorLines(cmp: Comparison): string[] {
  const lines = ['Floor (undici-proxy / nginx: node:http + undici Pool, forwarding only) against the nginx targets:'];
  const describe: Record<FloorNote['id'], [string, string]> = {
    saturation: ['saturation req/s', `≥ ${TARGETS.saturationVsNginx}x`],
    'added-p50': ['added p50', `≤ ${TARGETS.addedVsNginx}x`],
    'added-p99': ['added p99', `≤ ${TARGETS.addedVsNginx}x`],
  };
  const rows = cmp.floor.map((n) => {
    const [what, target] = describe[n.id];
    const verdictText =
      n.reachable === undefined
        ? 'not measurable'
        : n.reachable
          ? 'the bare Node.js proxy meets it: within reach of a Node.js proxy here'
          : 'even the bare Node.js proxy misses it: out of reach for a Node.js proxy here';
    return [`  ${what}`, x(n.value), `target ${target}`, verdictText];
  });
  lines.push(table(rows));
  const sidecarShare = cmp.saturation.sidecarVsUndiciProxy;
  if (sidecarShare !== undefined) lines.push(`  the sidecar reaches ${(sidecarShare * 100).toFixed(0)}% of the floor's req/s`);
  return lines;
}

function authLines(m: Measurements, cmp: Comparison, c: Check | undefined): string[] {
  const lines = ['Auth (sidecar-auth: JWT RS256 from a local JWKS + RBAC, vs sidecar with auth off):'];
  lines.push(table([['  sidecar-auth / sidecar, req/s', x(cmp.saturation.authVsNoAuth), `target ≥ ${TARGETS.authVsNoAuth}x`, verdict(c)]]));
  const d = cmp.rate.authAddedUs;
  if (d) lines.push(`  ${rateLabel(m)}, auth adds p50 ${signedUs(d.p50)} µs, p99 ${signedUs(d.p99)} µs, p99.9 ${signedUs(d.p999)} µs`);
  return lines;
}

function telemetryLines(m: Measurements, cmp: Comparison, sat: Check | undefined, p50: Check | undefined, note: TelemetryNote | undefined): string[] {
  const signals = note ? note.signals.join(', ') : '?';
  const lines = [`Telemetry (sidecar-telemetry: ${signals} over OTLP gRPC to the bench's receiver, vs sidecar with telemetry off):`];
  const d = cmp.rate.telemetryAddedUs;
  lines.push(
    table([
      ['  sidecar-telemetry / sidecar, req/s', x(cmp.saturation.telemetryVsOff), `target ≥ ${TARGETS.telemetryVsOff.toFixed(2)}x`, verdict(sat)],
      [`  ${rateLabel(m)}, telemetry adds p50`, `${signedUs(d?.p50)} µs`, `target ≤ ${TARGETS.telemetryAddedP50Us} µs`, verdict(p50)],
    ]),
  );
  if (d) lines.push(`  ${rateLabel(m)}, telemetry adds p99 ${signedUs(d.p99)} µs, p99.9 ${signedUs(d.p999)} µs`);
  for (const phase of ['saturation', 'rate'] as const) {
    const on = cpuPerThousand(m, phase, 'sidecar-telemetry');
    const off = cpuPerThousand(m, phase, 'sidecar');
    if (on === undefined || off === undefined) continue;
    lines.push(
      `  sidecar CPU per request, telemetry on / off (${phase === 'saturation' ? 'saturation' : rateLabel(m)}): ${x(on / off)}` +
        ` (${(on - off).toFixed(1)} ms more per 1000 requests; ≤ ${(1 / TARGETS.telemetryVsOff).toFixed(2)}x is what ≥ ${TARGETS.telemetryVsOff.toFixed(2)}x req/s means for a CPU-bound process)`,
    );
  }
  for (const p of note?.phases ?? []) {
    lines.push(
      `  while measured (${p.phase === 'saturation' ? 'saturation' : 'constant rate'}, ${int.format(p.requests)} requests): the receiver got ${int.format(p.spans)} spans, ` +
        `${int.format(p.logRecords)} log records, ${p.metricExports} metric exports; the bench process (mostly the receiver) used ${p.benchCpuPercent.toFixed(0)}% of a CPU`,
    );
  }
  const drops = Object.entries(note?.dropped ?? {}).filter(([, n]) => n > 0);
  if (drops.length > 0) lines.push(`  agent_telemetry_dropped (last exported): ${drops.map(([k, n]) => `${k} ${int.format(n)}`).join(', ')}`);
  else if (note?.signals.includes('metrics')) lines.push('  agent_telemetry_dropped (last exported): none');
  return lines;
}

/** Warnings a reader must see next to the figures: errors and failed requests. */
export function warnings(m: Measurements): string[] {
  const w: string[] = [];
  for (const [t, r] of Object.entries(m.saturation)) {
    const n = errorCount(r.errors);
    if (n > 0) w.push(`wrk against ${t}: ${n} errors ${JSON.stringify(r.errors)}`);
  }
  for (const [t, r] of Object.entries(m.rate)) {
    if (r.success < 1) w.push(`vegeta against ${t}: success ${(r.success * 100).toFixed(2)}%, status codes ${JSON.stringify(r.statusCodes)}, errors ${JSON.stringify(r.errors.slice(0, 3))}`);
  }
  return w;
}
