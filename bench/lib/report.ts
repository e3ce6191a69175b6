import type { TargetName } from './options.ts';
import { ratio } from './stats.ts';
import type { RateResult } from './vegeta.ts';
import { errorCount, type SaturationResult } from './wrk.ts';

export interface Measurements {
  saturation: Partial<Record<TargetName, SaturationResult>>;
  rate: Partial<Record<TargetName, RateResult>>;
}

/** A target from the issue, checked against a measured figure. */
export interface Check {
  id: 'saturation' | 'added-p50' | 'added-p99';
  name: string;
  value: number | undefined;
  op: '>=' | '<=';
  limit: number;
  /** undefined when a figure it needs is missing or meaningless (for example nginx added ≤ 0). */
  pass: boolean | undefined;
}

export interface Comparison {
  saturation: { sidecarVsNginx?: number; sidecarVsDirect?: number; nginxVsDirect?: number };
  rate: {
    /** Latency a hop adds over direct at the same rate, in µs. */
    addedUs: Partial<Record<'nginx' | 'sidecar', { p50: number; p99: number; p999: number }>>;
    /** Sidecar-added / nginx-added. */
    sidecarAddedVsNginxAdded: { p50?: number; p99?: number; p999?: number };
  };
  checks: Check[];
}

export const TARGETS = { saturationVsNginx: 0.55, addedVsNginx: 1.5 } as const;

export function compare(m: Measurements): Comparison {
  const s = m.saturation;
  const rps = (t: TargetName) => s[t]?.requestsPerSecond ?? Number.NaN;
  const saturation = {
    sidecarVsNginx: ratio(rps('sidecar'), rps('nginx')),
    sidecarVsDirect: ratio(rps('sidecar'), rps('direct')),
    nginxVsDirect: ratio(rps('nginx'), rps('direct')),
  };
  const direct = m.rate.direct;
  const addedUs: Comparison['rate']['addedUs'] = {};
  for (const hop of ['nginx', 'sidecar'] as const) {
    const r = m.rate[hop];
    if (r === undefined || direct === undefined) continue;
    addedUs[hop] = {
      p50: r.latencyUs.p50 - direct.latencyUs.p50,
      p99: r.latencyUs.p99 - direct.latencyUs.p99,
      p999: r.latencyUs.p999 - direct.latencyUs.p999,
    };
  }
  const n = addedUs.nginx;
  const c = addedUs.sidecar;
  const vs = (k: 'p50' | 'p99' | 'p999') => (n && c ? ratio(c[k], n[k]) : undefined);
  const added = { p50: vs('p50'), p99: vs('p99'), p999: vs('p999') };
  const checks: Check[] = [
    check('saturation', 'saturation: sidecar req/s vs nginx', saturation.sidecarVsNginx, '>=', TARGETS.saturationVsNginx),
    check('added-p50', `${rateLabel(m)}: sidecar added p50 vs nginx added`, added.p50, '<=', TARGETS.addedVsNginx),
    check('added-p99', `${rateLabel(m)}: sidecar added p99 vs nginx added`, added.p99, '<=', TARGETS.addedVsNginx),
  ];
  return { saturation, rate: { addedUs, sidecarAddedVsNginxAdded: added }, checks };
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

export function render(m: Measurements, cmp: Comparison, order: readonly TargetName[], header: Header): string {
  const out: string[] = [];
  const satRows = [['target', 'req/s', 'p50', 'p99', 'p99.9', 'max', 'errors']];
  for (const t of order) {
    const r = m.saturation[t];
    if (!r) continue;
    const l = r.latencyUs;
    satRows.push([t, int.format(r.requestsPerSecond), us(l.p50), us(l.p99), us(l.p999), us(l.max), int.format(errorCount(r.errors))]);
  }
  out.push(header.saturation, table(satRows), '');
  const checkFor = (id: Check['id']) => cmp.checks.find((c) => c.id === id);
  out.push(
    table([
      ['  sidecar / nginx', x(cmp.saturation.sidecarVsNginx), `target ≥ ${TARGETS.saturationVsNginx}x`, verdict(checkFor('saturation'))],
      ['  sidecar / direct', x(cmp.saturation.sidecarVsDirect), '', ''],
      ['  nginx / direct', x(cmp.saturation.nginxVsDirect), '', ''],
    ]),
    '',
  );

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
  out.push(header.rate, table(rateRows), '  (+pNN: added latency vs direct at the same percentile)', '');
  const a = cmp.rate.sidecarAddedVsNginxAdded;
  out.push(
    table([
      ['  sidecar added / nginx added, p50', x(a.p50), `target ≤ ${TARGETS.addedVsNginx}x`, verdict(checkFor('added-p50'))],
      ['  sidecar added / nginx added, p99', x(a.p99), `target ≤ ${TARGETS.addedVsNginx}x`, verdict(checkFor('added-p99'))],
      ['  sidecar added / nginx added, p99.9', x(a.p999), '', ''],
    ]),
    '',
  );
  const failed = cmp.checks.filter((c) => c.pass !== true);
  out.push(failed.length === 0 ? 'All targets met.' : `Targets not met or not measurable: ${failed.map((c) => `${c.name} (${verdict(c)})`).join('; ')}.`);
  return out.join('\n');
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
