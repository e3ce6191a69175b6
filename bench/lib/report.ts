import { PEERS, SIDECAR_TARGETS, type SidecarTarget, type TargetName } from './options.ts';
import type { SoakResult } from './soak.ts';
import type { StreamResult } from './sse.ts';
import { ratio } from './stats.ts';
import type { RateResult } from './vegeta.ts';
import { errorCount, type SaturationResult } from './wrk.ts';

type PerTarget<T> = Partial<Record<TargetName, T>>;

export interface Measurements {
  saturation: PerTarget<SaturationResult>;
  rate: PerTarget<RateResult>;
  /** SSE scenarios: the stream phase. */
  streams: PerTarget<StreamResult>;
  /** CPU seconds each server (with its worker processes) used during each measured phase. */
  cpuSeconds: { saturation: PerTarget<number>; rate: PerTarget<number>; streams: PerTarget<number> };
  /** Largest resident bytes of each server's processes (VmRSS summed, sampled every RSS_SAMPLE_MS) during each phase. */
  rssBytes: { saturation: PerTarget<number>; rate: PerTarget<number>; streams: PerTarget<number> };
  /** RssAnon of the same samples: VmRSS less the file-backed pages of the binary and libraries. */
  anonBytes: { saturation: PerTarget<number>; rate: PerTarget<number>; streams: PerTarget<number> };
  /** VmHWM (each process's own peak since it started) summed over each server's processes at the end. */
  hwmBytes: PerTarget<number>;
  /** --soak: the scenario's own sidecar at the constant rate for minutes. */
  soak?: SoakResult | undefined;
}

export function emptyMeasurements(): Measurements {
  return {
    saturation: {},
    rate: {},
    streams: {},
    cpuSeconds: { saturation: {}, rate: {}, streams: {} },
    rssBytes: { saturation: {}, rate: {}, streams: {} },
    anonBytes: { saturation: {}, rate: {}, streams: {} },
    hwmBytes: {},
  };
}

const MB = 1024 * 1024;

/**
 * CPU cores a server keeps busy per 1000 req/s of load: CPU seconds per second of the phase,
 * divided by the rate in thousands. (The same figure as CPU seconds per 1000 requests.)
 */
export function coresPer1000Rps(cpuSeconds: number | undefined, seconds: number, rate: number): number | undefined {
  if (cpuSeconds === undefined || !(seconds > 0) || !(rate > 0)) return undefined;
  return cpuSeconds / seconds / (rate / 1000);
}

/** A target's cores per 1000 req/s at the constant rate. */
export function rateCores(m: Measurements, t: TargetName): number | undefined {
  const r = m.rate[t];
  return r ? coresPer1000Rps(m.cpuSeconds.rate[t], r.durationSeconds, r.rate) : undefined;
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
  id:
    | 'saturation'
    | 'added-p50'
    | 'added-p99'
    | 'auth-saturation'
    | 'telemetry-saturation'
    | 'telemetry-added-p50'
    | 'full-saturation'
    | 'full-added-p50'
    | 'full-added-p99'
    | 'oauth2-proxy-saturation'
    | 'cpu-cores'
    | 'rss'
    | 'soak-rss-max'
    | 'soak-rss-slope';
  name: string;
  value: number | undefined;
  op: '>=' | '<=';
  limit: number;
  /** undefined when a figure it needs is missing or meaningless (for example nginx added ≤ 0). */
  pass: boolean | undefined;
}

type Hop = Exclude<TargetName, 'direct'>;
type Pcts = { p50?: number | undefined; p99?: number | undefined; p999?: number | undefined };

/** A sidecar target over a peer: > 1 means the sidecar has more of it (req/s: better; latency, CPU, RSS: worse). */
export interface PeerRatios {
  target: SidecarTarget;
  peer: (typeof PEERS)[number];
  /** Saturation req/s. */
  rps?: number | undefined;
  /** Latency at the constant rate, as measured. */
  p50?: number | undefined;
  p99?: number | undefined;
  max?: number | undefined;
  /** Latency added over direct at the constant rate. */
  addedP50?: number | undefined;
  addedP99?: number | undefined;
  /** CPU per request at the constant rate. */
  cpu?: number | undefined;
  /** CPU cores per 1000 req/s at the constant rate. */
  cores?: number | undefined;
  /** Peak RSS and its anonymous part at the constant rate. */
  rss?: number | undefined;
  anon?: number | undefined;
  /** Peak RSS and its anonymous part under saturation (measured after the constant rate). */
  rssSaturated?: number | undefined;
  anonSaturated?: number | undefined;
}

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
    /** sidecar-full (auth + telemetry) / nginx. */
    fullVsNginx?: number | undefined;
    /** sidecar-auth / oauth2-proxy: the same JWT workload. */
    authVsOauth2Proxy?: number | undefined;
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
    /** Sidecar-full-added / nginx-added. */
    fullAddedVsNginxAdded: Pcts;
    /** CPU cores per 1000 req/s at the constant rate. */
    coresPer1000Rps: PerTarget<number>;
  };
  /** Each sidecar target against each peer that ran. */
  peers: PeerRatios[];
  /** SSE scenarios: what each hop adds to direct's stream times (µs), and events/s ratios. */
  streams: {
    addedUs: PerTarget<{ ttfeP50: number; ttfeP99: number; totalP50: number; totalP99: number }>;
    eventsVsDirect: PerTarget<number>;
    eventsVsNginx: PerTarget<number>;
  };
  /** The floor against each nginx target: can any Node proxy reach it here? */
  floor: FloorNote[];
  checks: Check[];
}

export const TARGETS = {
  saturationVsNginx: 0.55,
  addedVsNginx: 1.5,
  authVsNoAuth: 0.9,
  telemetryVsOff: 0.9,
  telemetryAddedP50Us: 200,
  /** The full ingress chain (auth + telemetry) against nginx. */
  fullSaturationVsNginx: 0.45,
  /** sidecar-auth against oauth2-proxy on the same tokens. */
  vsOauth2Proxy: 1.0,
  /** At the constant rate; the published Istio sidecar figure is 0.20. */
  coresPer1000Rps: 0.1,
  rssMb: 100,
  /** "Flat" over a soak: at most 1 MB a minute (10 MB over 10 minutes, a tenth of the RSS budget). */
  soakSlopeMbPerMinute: 1,
} as const;

export function compare(m: Measurements, o: { subject?: SidecarTarget | undefined } = {}): Comparison {
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
    fullVsNginx: ratio(rps('sidecar-full'), rps('nginx')),
    authVsOauth2Proxy: ratio(rps('sidecar-auth'), rps('oauth2-proxy')),
  };
  const direct = m.rate.direct;
  const addedUs: Comparison['rate']['addedUs'] = {};
  for (const [hop, r] of Object.entries(m.rate) as Array<[TargetName, RateResult]>) {
    if (hop === 'direct') continue;
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
  const fullAdded = vs('sidecar-full', 'nginx');
  const floorAdded = vs('undici-proxy', 'nginx');
  const off = m.rate.sidecar;
  const over = (on: RateResult | undefined) =>
    on && off
      ? { p50: on.latencyUs.p50 - off.latencyUs.p50, p99: on.latencyUs.p99 - off.latencyUs.p99, p999: on.latencyUs.p999 - off.latencyUs.p999 }
      : undefined;
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
  if (ran('nginx', 'sidecar-full')) {
    checks.push(
      check('full-saturation', 'saturation: sidecar-full (auth + telemetry) req/s vs nginx', saturation.fullVsNginx, '>=', TARGETS.fullSaturationVsNginx),
      check('full-added-p50', `${rateLabel(m)}: sidecar-full added p50 vs nginx added`, fullAdded.p50, '<=', TARGETS.addedVsNginx),
      check('full-added-p99', `${rateLabel(m)}: sidecar-full added p99 vs nginx added`, fullAdded.p99, '<=', TARGETS.addedVsNginx),
    );
  }
  if (ran('oauth2-proxy', 'sidecar-auth')) {
    checks.push(
      check(
        'oauth2-proxy-saturation',
        'saturation: sidecar-auth req/s vs oauth2-proxy (same JWT workload)',
        saturation.authVsOauth2Proxy,
        '>=',
        TARGETS.vsOauth2Proxy,
      ),
    );
  }
  const coresPer1000: PerTarget<number> = {};
  for (const t of Object.keys(m.rate) as TargetName[]) {
    const c = rateCores(m, t);
    if (c !== undefined) coresPer1000[t] = c;
  }
  const subject = o.subject;
  if (subject !== undefined && m.rate[subject] !== undefined) {
    const rss = m.rssBytes.rate[subject];
    checks.push(
      check('cpu-cores', `${rateLabel(m)}: ${subject} CPU per 1000 req/s`, coresPer1000[subject], '<=', TARGETS.coresPer1000Rps),
      check('rss', `${rateLabel(m)}: ${subject} peak RSS`, rss === undefined ? undefined : rss / MB, '<=', TARGETS.rssMb),
    );
  }
  if (m.soak !== undefined) {
    checks.push(
      check('soak-rss-max', `soak (${m.soak.minutes} min at ${m.soak.rate} req/s): ${m.soak.target} largest RSS`, m.soak.maxBytes / MB, '<=', TARGETS.rssMb),
      check(
        'soak-rss-slope',
        `soak (${m.soak.minutes} min at ${m.soak.rate} req/s): ${m.soak.target} RSS slope`,
        m.soak.slopeMbPerMinute,
        '<=',
        TARGETS.soakSlopeMbPerMinute,
      ),
    );
  }
  if (ran('sidecar', 'sidecar-auth')) {
    checks.push(check('auth-saturation', 'saturation: sidecar-auth req/s vs sidecar (auth off)', saturation.authVsNoAuth, '>=', TARGETS.authVsNoAuth));
  }
  if (ran('sidecar', 'sidecar-telemetry')) {
    checks.push(
      check('telemetry-saturation', 'saturation: sidecar-telemetry req/s vs sidecar (telemetry off)', saturation.telemetryVsOff, '>=', TARGETS.telemetryVsOff),
      check('telemetry-added-p50', `${rateLabel(m)}: p50 telemetry adds`, telemetryAddedUs?.p50, '<=', TARGETS.telemetryAddedP50Us),
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
      fullAddedVsNginxAdded: fullAdded,
      coresPer1000Rps: coresPer1000,
    },
    peers: peerRatios(m, addedUs),
    streams: compareStreams(m),
    floor,
    checks,
  };
}

function peerRatios(m: Measurements, addedUs: Comparison['rate']['addedUs']): PeerRatios[] {
  const ran = (t: TargetName) => m.saturation[t] !== undefined || m.rate[t] !== undefined;
  const out: PeerRatios[] = [];
  for (const target of SIDECAR_TARGETS) {
    if (!ran(target)) continue;
    for (const peer of PEERS) {
      if (!ran(peer)) continue;
      const of = (f: (t: TargetName) => number | undefined) => ratio(f(target) ?? Number.NaN, f(peer) ?? Number.NaN);
      out.push({
        target,
        peer,
        rps: of((t) => m.saturation[t]?.requestsPerSecond),
        p50: of((t) => m.rate[t]?.latencyUs.p50),
        p99: of((t) => m.rate[t]?.latencyUs.p99),
        max: of((t) => m.rate[t]?.latencyUs.max),
        addedP50: of((t) => addedUs[t as Hop]?.p50),
        addedP99: of((t) => addedUs[t as Hop]?.p99),
        cpu: of((t) => cpuPerThousand(m, 'rate', t)),
        cores: of((t) => rateCores(m, t)),
        rss: of((t) => m.rssBytes.rate[t]),
        anon: of((t) => m.anonBytes.rate[t]),
        rssSaturated: of((t) => m.rssBytes.saturation[t]),
        anonSaturated: of((t) => m.anonBytes.saturation[t]),
      });
    }
  }
  return out;
}

function compareStreams(m: Measurements): Comparison['streams'] {
  const out: Comparison['streams'] = { addedUs: {}, eventsVsDirect: {}, eventsVsNginx: {} };
  const direct = m.streams.direct;
  const nginx = m.streams.nginx;
  for (const [t, r] of Object.entries(m.streams) as Array<[TargetName, StreamResult]>) {
    if (t === 'direct') continue;
    if (direct) {
      out.addedUs[t] = {
        ttfeP50: r.ttfeUs.p50 - direct.ttfeUs.p50,
        ttfeP99: r.ttfeUs.p99 - direct.ttfeUs.p99,
        totalP50: r.totalUs.p50 - direct.totalUs.p50,
        totalP99: r.totalUs.p99 - direct.totalUs.p99,
      };
      out.eventsVsDirect[t] = ratio(r.eventsPerSecond, direct.eventsPerSecond);
    }
    if (nginx && t !== 'nginx') out.eventsVsNginx[t] = ratio(r.eventsPerSecond, nginx.eventsPerSecond);
  }
  return out;
}

function rateLabel(m: Measurements): string {
  const r = m.rate.direct ?? m.rate.nginx ?? m.rate.sidecar;
  return r ? `at ${Math.round(r.rate)} req/s` : 'at constant rate';
}

/** The unit of each check's value. */
const CHECK_UNITS: Record<Check['id'], 'x' | 'µs' | 'cores' | 'MB' | 'MB/min'> = {
  saturation: 'x',
  'added-p50': 'x',
  'added-p99': 'x',
  'auth-saturation': 'x',
  'telemetry-saturation': 'x',
  'telemetry-added-p50': 'µs',
  'full-saturation': 'x',
  'full-added-p50': 'x',
  'full-added-p99': 'x',
  'oauth2-proxy-saturation': 'x',
  'cpu-cores': 'cores',
  rss: 'MB',
  'soak-rss-max': 'MB',
  'soak-rss-slope': 'MB/min',
};

/** A check's value with its unit ("0.52x", "120 µs", "0.081 cores", "64.2 MB", "0.40 MB/min"); n/a when missing. */
export function checkValue(c: Pick<Check, 'id' | 'value'>): string {
  const v = c.value;
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  switch (CHECK_UNITS[c.id]) {
    case 'x':
      return `${v.toFixed(2)}x`;
    case 'µs':
      return `${Math.round(v)} µs`;
    case 'cores':
      return `${v.toFixed(3)} cores`;
    case 'MB':
      return `${v.toFixed(1)} MB`;
    case 'MB/min':
      return `${v.toFixed(2)} MB/min`;
  }
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
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

export interface Header {
  saturation: string;
  rate: string;
  streams?: string;
}

/** What only some scenarios print. */
export interface Extra {
  /** --scenario telemetry: the signals and what sidecar-telemetry exported while measured. */
  telemetry?: TelemetryNote | undefined;
  /** Peers that record too (agentgateway in full): what each one's own receiver got while it was measured. */
  peerTelemetry?: PeerTelemetry[] | undefined;
}

export interface PeerTelemetry {
  target: TargetName;
  /** What it records and where, for the heading. */
  what: string;
  note: TelemetryNote;
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
  const checkFor = (id: Check['id']) => cmp.checks.find((c) => c.id === id);
  if (Object.keys(m.saturation).length > 0 || Object.keys(m.rate).length > 0) out.push(...requestLines(m, cmp, order, header, extra));
  if (Object.keys(m.streams).length > 0) out.push(...streamLines(m, cmp, order, header.streams ?? 'Streams'), '');
  if (cmp.peers.length > 0) out.push(...peerLines(cmp), '');
  if (order.includes('sidecar-full') && order.includes('nginx')) out.push(...fullLines(m, cmp, checkFor), '');
  // The telemetry block of the telemetry scenario shows these; other exporters (sidecar-full, sidecar-protect) get them alone.
  if (extra.telemetry !== undefined && !order.includes('sidecar-telemetry')) {
    out.push(`Telemetry (${extra.telemetry.signals.join(', ')} over OTLP gRPC to the bench's receiver):`, ...receiverLines(extra.telemetry), '');
  }
  for (const p of extra.peerTelemetry ?? []) out.push(`${p.target} (${p.what}):`, ...receiverLines(p.note), '');
  const own = (['cpu-cores', 'rss', 'oauth2-proxy-saturation'] as const).flatMap((id) => checkFor(id) ?? []);
  if (own.length > 0)
    out.push(
      'Targets:',
      table(own.map((c) => [`  ${c.name}`, checkValue(c), `target ${c.op === '>=' ? '≥' : '≤'} ${checkValue({ ...c, value: c.limit })}`, verdict(c)])),
      '',
    );
  if (m.soak !== undefined) out.push(...soakLines(m.soak, checkFor('soak-rss-max'), checkFor('soak-rss-slope')), '');

  const failed = cmp.checks.filter((c) => c.pass !== true);
  if (cmp.checks.length === 0) out.push('No target applies to these targets (ratios only).');
  else out.push(failed.length === 0 ? 'All targets met.' : `Targets not met or not measurable: ${failed.map((c) => `${c.name} (${verdict(c)})`).join('; ')}.`);
  return out.join('\n');
}

function fixed(v: number | undefined, digits: number): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

function mb(bytes: number | undefined): string {
  return bytes === undefined ? '-' : (bytes / MB).toFixed(1);
}

/** The wrk and vegeta phases: tables, ratios, floor, and the auth and telemetry blocks. */
function requestLines(m: Measurements, cmp: Comparison, order: readonly TargetName[], header: Header, extra: Extra): string[] {
  const out: string[] = [];
  const has = (...t: TargetName[]) => t.every((n) => order.includes(n));
  const satRows = [['target', 'req/s', 'p50', 'p99', 'p99.9', 'max', 'errors']];
  for (const t of order) {
    const r = m.saturation[t];
    if (!r) continue;
    const l = r.latencyUs;
    satRows.push([t, int.format(r.requestsPerSecond), us(l.p50), us(l.p99), us(l.p999), us(l.max), int.format(errorCount(r.errors))]);
  }
  out.push(header.saturation, table(satRows), ...cpuLine(m, 'saturation', order), ...rssLine(m, 'saturation', order), '');
  const checkFor = (id: Check['id']) => cmp.checks.find((c) => c.id === id);
  const sat = cmp.saturation;
  const satRatios: string[][] = [];
  if (has('nginx', 'sidecar'))
    satRatios.push(['  sidecar / nginx', x(sat.sidecarVsNginx), `target ≥ ${TARGETS.saturationVsNginx}x`, verdict(checkFor('saturation'))]);
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
  out.push(
    header.rate,
    table(rateRows),
    '  (+pNN: added latency vs direct at the same percentile)',
    ...cpuLine(m, 'rate', order),
    ...coresLine(cmp, order),
    ...rssLine(m, 'rate', order),
    ...hwmLine(m, order),
    '',
  );
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
  if (has('sidecar', 'sidecar-telemetry'))
    out.push(...telemetryLines(m, cmp, checkFor('telemetry-saturation'), checkFor('telemetry-added-p50'), extra.telemetry), '');
  return out;
}

function rssLine(m: Measurements, phase: 'saturation' | 'rate' | 'streams', order: readonly TargetName[]): string[] {
  const parts = order.flatMap((t) => {
    const rss = m.rssBytes[phase][t];
    const anon = m.anonBytes[phase][t];
    return rss === undefined ? [] : [`${t} ${mb(rss)}${anon === undefined ? '' : ` (anonymous ${mb(anon)})`}`];
  });
  return parts.length === 0 ? [] : [`  Peak RSS in MB (VmRSS of the server's processes, sampled while measured; RssAnon apart): ${parts.join(' · ')}`];
}

function hwmLine(m: Measurements, order: readonly TargetName[]): string[] {
  const parts = order.flatMap((t) => (m.hwmBytes[t] === undefined ? [] : [`${t} ${mb(m.hwmBytes[t])}`]));
  return parts.length === 0 ? [] : [`  VmHWM in MB at the end (each process's own peak since start, summed): ${parts.join(' · ')}`];
}

function coresLine(cmp: Comparison, order: readonly TargetName[]): string[] {
  const parts = order.flatMap((t) => (cmp.rate.coresPer1000Rps[t] === undefined ? [] : [`${t} ${fixed(cmp.rate.coresPer1000Rps[t], 3)}`]));
  return parts.length === 0 ? [] : [`  CPU cores per 1000 req/s (CPU seconds per second / thousands of req/s): ${parts.join(' · ')}`];
}

/** Every sidecar target against each peer that ran (PEERS): > 1 is more req/s (better), or more latency, CPU, memory (worse). */
function peerLines(cmp: Comparison): string[] {
  const rows = [['  sidecar target / peer', 'req/s', 'p50', 'p99', 'max', '+p50', '+p99', 'cores', 'RSS', 'anon', 'RSS sat', 'anon sat']];
  for (const p of cmp.peers)
    rows.push([
      `  ${p.target} / ${p.peer}`,
      x(p.rps),
      x(p.p50),
      x(p.p99),
      x(p.max),
      x(p.addedP50),
      x(p.addedP99),
      x(p.cores),
      x(p.rss),
      x(p.anon),
      x(p.rssSaturated),
      x(p.anonSaturated),
    ]);
  return [
    'Against the peers (req/s: saturation; at the constant rate: p50, p99, max, the p50 and p99 added over direct, CPU cores per 1000 req/s, peak RSS and its anonymous part; then peak RSS and anonymous under saturation):',
    table(rows),
  ];
}

function fullLines(m: Measurements, cmp: Comparison, checkFor: (id: Check['id']) => Check | undefined): string[] {
  const a = cmp.rate.fullAddedVsNginxAdded;
  return [
    'Full ingress chain (sidecar-full: JWT RS256 + RBAC + traces, metrics and logs over OTLP) against nginx:',
    table([
      ['  sidecar-full / nginx, req/s', x(cmp.saturation.fullVsNginx), `target ≥ ${TARGETS.fullSaturationVsNginx}x`, verdict(checkFor('full-saturation'))],
      [`  ${rateLabel(m)}: sidecar-full added / nginx added, p50`, x(a.p50), `target ≤ ${TARGETS.addedVsNginx}x`, verdict(checkFor('full-added-p50'))],
      [`  ${rateLabel(m)}: sidecar-full added / nginx added, p99`, x(a.p99), `target ≤ ${TARGETS.addedVsNginx}x`, verdict(checkFor('full-added-p99'))],
    ]),
  ];
}

function streamLines(m: Measurements, cmp: Comparison, order: readonly TargetName[], header: string): string[] {
  const rows = [
    ['target', 'streams', 'streams/s', 'events/s', 'TTFE p50', 'p99', 'total p50', 'p99', 'p99.9', '+TTFE p50', '+total p50', '+total p99', 'errors'],
  ];
  for (const t of order) {
    const r = m.streams[t];
    if (!r) continue;
    const a = cmp.streams.addedUs[t];
    const errors = r.errors.status + r.errors.short + r.errors.error;
    rows.push([
      t,
      int.format(r.streams),
      r.streamsPerSecond.toFixed(1),
      int.format(r.eventsPerSecond),
      us(r.ttfeUs.p50),
      us(r.ttfeUs.p99),
      us(r.totalUs.p50),
      us(r.totalUs.p99),
      us(r.totalUs.p999),
      signedUs(a?.ttfeP50),
      signedUs(a?.totalP50),
      signedUs(a?.totalP99),
      int.format(errors),
    ]);
  }
  const cpu = order.flatMap((t) => {
    const c = m.cpuSeconds.streams[t];
    const r = m.streams[t];
    return c === undefined || !r || r.eventsPerSecond === 0 ? [] : [`${t} ${((c / (r.eventsPerSecond * r.durationSeconds)) * 1e6).toFixed(2)} ms`];
  });
  const ratios = order.flatMap((t) =>
    cmp.streams.eventsVsDirect[t] === undefined
      ? []
      : [`${t} ${x(cmp.streams.eventsVsDirect[t])}${cmp.streams.eventsVsNginx[t] === undefined ? '' : ` (${x(cmp.streams.eventsVsNginx[t])} of nginx)`}`],
  );
  return [
    header,
    table(rows),
    '  (TTFE: time to the first complete event; total: to the end of the stream; +: added vs direct; µs)',
    ...(cpu.length > 0 ? [`  CPU per 1000 events (the server process and its workers): ${cpu.join(' · ')}`] : []),
    ...rssLine(m, 'streams', order),
    ...(ratios.length > 0 ? [`  events/s vs direct: ${ratios.join(' · ')}`] : []),
  ];
}

function soakLines(s: SoakResult, max: Check | undefined, slope: Check | undefined): string[] {
  const lat = s.latencyUs;
  return [
    `Soak: ${s.target} at ${s.rate} req/s for ${s.minutes} min, RSS sampled every ${s.sampleSeconds} s (${s.samples.length} samples):`,
    `  RSS first ${mb(s.firstBytes)} MB, last ${mb(s.lastBytes)} MB, max ${mb(s.maxBytes)} MB; slope ${fixed(s.slopeMbPerMinute, 2)} MB/min`,
    `  requests ${int.format(s.requests)}, success ${(s.success * 100).toFixed(2)}%, p50 ${us(lat.p50)} µs, p99 ${us(lat.p99)} µs (vegeta's estimate)`,
    table(
      [max, slope].flatMap((c) =>
        c === undefined
          ? []
          : [[`  ${c.id === 'soak-rss-max' ? 'largest RSS' : 'RSS slope'}`, checkValue(c), `target ≤ ${checkValue({ ...c, value: c.limit })}`, verdict(c)]],
      ),
    ),
  ];
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
  lines.push(...receiverLines(note));
  return lines;
}

/** What the OTLP receiver got while the exporting sidecar was measured, and what it dropped. */
function receiverLines(note: TelemetryNote | undefined): string[] {
  const lines: string[] = [];
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
    if (r.success < 1)
      w.push(
        `vegeta against ${t}: success ${(r.success * 100).toFixed(2)}%, status codes ${JSON.stringify(r.statusCodes)}, errors ${JSON.stringify(r.errors.slice(0, 3))}`,
      );
  }
  return w;
}
