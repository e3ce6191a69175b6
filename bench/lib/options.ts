import { parseArgs } from 'node:util';

/** Everything a run can be told, from flags or BENCH_* variables (flags win). */
export interface BenchOptions {
  /** Seconds of wrk load per target (wrk takes whole seconds). */
  saturationSeconds: number;
  /** Seconds of constant-rate load per target. */
  rateSeconds: number;
  /** Seconds of unmeasured load per target before each measurement. */
  warmupSeconds: number;
  /**
   * Seconds at the constant rate before a Node.js server's constant-rate phase: it comes first,
   * so V8 has not optimized the hot path yet (2 s of warm-up measured 0.145 cores per 1000
   * req/s, 15 s and 30 s 0.111 to 0.114).
   */
  rateWarmupSeconds: number;
  /** Requests per second of the constant-rate phase. */
  rate: number;
  /** wrk threads and connections. */
  threads: number;
  connections: number;
  /** Pin the load generator to CPU 0 and the servers to CPU 1 (taskset). */
  pin: boolean;
  /** What is measured (see SCENARIOS); `all` runs each of ALL_SCENARIOS in turn. */
  scenario: Scenario | 'all';
  /** With --scenario telemetry: the signals sidecar-telemetry records and exports. */
  telemetrySignals: TelemetrySignal[];
  /** Which targets to run, in order. */
  targets: TargetName[];
  /** Concurrent streams of the SSE scenarios (sse, egress). */
  streams: number;
  /** Events per stream of the SSE scenarios. */
  events: number;
  /** Minutes of constant rate on the scenario's own sidecar after the constant-rate phase (before saturation), RSS sampled every 10 s; 0: no soak. */
  soakMinutes: number;
  /** Run the sidecar from its TypeScript sources instead of building dist/ and running bin/agent-sidecar.js. */
  source: boolean;
  /**
   * The Node.js and allocator settings `run` applies (src/cli/launch.ts): `default` keeps them,
   * `none` runs every sidecar target without them (AGENT_SIDECAR_NODE_FLAGS=none), to measure
   * what they are worth (README: Measured decisions).
   */
  nodeFlags: 'default' | 'none';
  /** Pass --cpu-prof to the sidecar; profiles land next to the results. */
  cpuProfile: boolean;
  /** Keep the temporary directory (configs, logs) after a successful run. */
  keepTmp: boolean;
  quick: boolean;
}

export const TARGET_NAMES = [
  'direct',
  'nginx',
  'undici-proxy',
  'oauth2-proxy',
  'agentgateway',
  'sidecar',
  'sidecar-auth',
  'sidecar-telemetry',
  'sidecar-full',
  'sidecar-protect',
  'sidecar-egress',
] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** The targets that are this project's sidecar, in some configuration. */
export const SIDECAR_TARGETS = [
  'sidecar',
  'sidecar-auth',
  'sidecar-telemetry',
  'sidecar-full',
  'sidecar-protect',
  'sidecar-egress',
] as const satisfies readonly TargetName[];
export type SidecarTarget = (typeof SIDECAR_TARGETS)[number];
/** The targets that run on Node.js (V8 optimizes them as they run: see rateWarmupSeconds). */
export const NODE_TARGETS: readonly TargetName[] = [...SIDECAR_TARGETS, 'undici-proxy'];
/**
 * Other proxies measured in the same run: the floor a proxy hop costs, a real peer doing the JWT
 * job, and an agent gateway doing the sidecar's job in each of passthrough, auth and full.
 */
export const PEERS = ['nginx', 'oauth2-proxy', 'agentgateway'] as const satisfies readonly TargetName[];

/**
 * The scenarios: (a) passthrough, (b) auth, (c) full, (d) protect, (e) sse,
 * (f) egress; telemetry is (c) without auth, to see what telemetry alone costs.
 */
export const SCENARIOS = ['passthrough', 'auth', 'telemetry', 'full', 'protect', 'sse', 'egress'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** What `--scenario all` runs, in this order (the README's Performance table). */
export const ALL_SCENARIOS = ['passthrough', 'auth', 'full', 'protect', 'sse', 'egress'] as const satisfies readonly Scenario[];

export const DEFAULT_TARGETS: Record<Scenario, readonly TargetName[]> = {
  passthrough: ['direct', 'nginx', 'undici-proxy', 'agentgateway', 'sidecar'],
  auth: ['direct', 'nginx', 'oauth2-proxy', 'agentgateway', 'sidecar', 'sidecar-auth'],
  telemetry: ['direct', 'sidecar', 'sidecar-telemetry'],
  full: ['direct', 'nginx', 'oauth2-proxy', 'agentgateway', 'sidecar-full'],
  protect: ['direct', 'nginx', 'sidecar-full', 'sidecar-protect'],
  sse: ['direct', 'nginx', 'sidecar'],
  egress: ['direct', 'nginx', 'sidecar-egress'],
};

/** The sidecar target each scenario is about: the one its targets (CPU, RSS, soak) are checked on. */
export const SUBJECT: Record<Scenario, SidecarTarget> = {
  passthrough: 'sidecar',
  auth: 'sidecar-auth',
  telemetry: 'sidecar-telemetry',
  full: 'sidecar-full',
  protect: 'sidecar-protect',
  sse: 'sidecar',
  egress: 'sidecar-egress',
};

/** The scenarios a target can run in (a target needs its scenario's fixtures: the JWKS, the OTLP receiver, the SSE upstream). */
const TARGET_SCENARIOS: Record<TargetName, readonly Scenario[]> = {
  direct: SCENARIOS,
  nginx: SCENARIOS,
  'undici-proxy': ['passthrough', 'auth', 'telemetry', 'full', 'protect', 'sse'],
  'oauth2-proxy': ['auth', 'full', 'protect'],
  agentgateway: ['passthrough', 'auth', 'full'],
  sidecar: ['passthrough', 'auth', 'telemetry', 'full', 'protect', 'sse'],
  'sidecar-auth': ['auth', 'full', 'protect'],
  'sidecar-telemetry': ['telemetry'],
  'sidecar-full': ['full', 'protect'],
  'sidecar-protect': ['protect'],
  'sidecar-egress': ['egress'],
};

/** Scenarios measured with streams of SSE events rather than wrk and vegeta. */
export const STREAM_SCENARIOS: readonly Scenario[] = ['sse', 'egress'];
/** Scenarios whose sidecars export telemetry (so --telemetry-signals applies). */
export const TELEMETRY_SCENARIOS: readonly Scenario[] = ['telemetry', 'full', 'protect'];
/** Scenarios that send the analyst's bearer token (and start the JWKS/OIDC discovery server). */
export const AUTH_SCENARIOS: readonly Scenario[] = ['auth', 'full', 'protect'];

export const TELEMETRY_SIGNALS = ['traces', 'metrics', 'logs'] as const;
export type TelemetrySignal = (typeof TELEMETRY_SIGNALS)[number];

/** The soak's length when --soak is given without minutes. */
export const DEFAULT_SOAK_MINUTES = 10;

export const USAGE = `usage: npm run bench -- [options]

  --quick                 smoke run: 2s per target and phase, 1s warm-up   (BENCH_QUICK=1)
  --duration <s>          wrk saturation seconds per target (default 10)   (BENCH_DURATION)
  --rate-duration <s>     constant-rate seconds per target (default 10)    (BENCH_RATE_DURATION)
  --warmup <s>            unmeasured seconds before each measurement (2)   (BENCH_WARMUP)
  --rate-warmup <s>       seconds at the constant rate before a Node.js
                          server's constant-rate phase (15)                (BENCH_RATE_WARMUP)
  --rate <n>              constant rate in requests/s (default 1000)       (BENCH_RATE)
  --threads <n>           wrk threads (default 2)                          (BENCH_THREADS)
  --connections <n>       wrk connections (default 64)                     (BENCH_CONNECTIONS)
  --pin                   taskset: load generator on CPU 0, servers on CPU 1 (BENCH_PIN=1)
  --scenario <name>       one of                                            (BENCH_SCENARIO)
                          passthrough  GET / through each proxy (default)
                          auth         JWT RS256 from a local JWKS/OIDC discovery + RBAC:
                                       sidecar-auth against oauth2-proxy and agentgateway
                                       on the same token
                          telemetry    sidecar-telemetry (OTLP gRPC to a receiver in the
                                       bench process) against the sidecar without it
                          full         auth + telemetry: sidecar-full, the ingress chain
                          protect      full + body protection of a 4 KB JSON POST
                          sse          1000-event SSE streams: time to first event, total
                                       time, events/s
                          egress       a streamed LLM call through the egress listener
                          all          passthrough, auth, full, protect, sse and egress in
                                       turn (protect and egress skipped when this build
                                       lacks them), then the Performance table
  --targets <list>        comma-separated, from direct,nginx,undici-proxy,oauth2-proxy,
                          agentgateway,sidecar,sidecar-auth,sidecar-telemetry,
                          sidecar-full,sidecar-protect,sidecar-egress (each only in the
                          scenarios that have its fixtures; agentgateway only when its
                          binary is there: $BENCH_AGENTGATEWAY, else
                          ~/.cache/agent-sidecar/peers/agentgateway); default per
                          scenario:                                         (BENCH_TARGETS)
                          passthrough  direct,nginx,undici-proxy,agentgateway,sidecar
                          auth         direct,nginx,oauth2-proxy,agentgateway,sidecar,
                                       sidecar-auth
                          telemetry    direct,sidecar,sidecar-telemetry
                          full         direct,nginx,oauth2-proxy,agentgateway,sidecar-full
                          protect      direct,nginx,sidecar-full,sidecar-protect
                          sse          direct,nginx,sidecar
                          egress       direct,nginx,sidecar-egress
  --telemetry-signals <list>  with telemetry, full or protect: what the sidecar
                          records, some of traces,metrics,logs (default all)
                                                                  (BENCH_TELEMETRY_SIGNALS)
  --streams <n>           concurrent SSE streams (sse, egress; default 8)   (BENCH_STREAMS)
  --events <n>            events per SSE stream (default 1000)              (BENCH_EVENTS)
  --soak [minutes]        after the measured phases, the constant rate on the
                          scenario's own sidecar for that long (default 10), RSS
                          sampled every 10 s; with all, only in full        (BENCH_SOAK)
  --source                run the sidecar from src/ (type stripping) instead of
                          building dist/ and running bin/agent-sidecar.js   (BENCH_SOURCE=1)
  --node-flags <default|none>  none: every sidecar target without the V8 flags and
                          MALLOC_ARENA_MAX that \`run\` sets (AGENT_SIDECAR_NODE_FLAGS=none),
                          to measure them against default in alternate runs (BENCH_NODE_FLAGS)
  --cpu-prof              write a CPU profile of each sidecar to bench/results/profiles/
                          (a .cpuprofile: a flame graph in speedscope or Chrome DevTools)
  --keep-tmp              keep the temporary directory with configs and logs
  -h, --help              this text
`;

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: withSoakDefault(argv),
    strict: true,
    options: {
      quick: { type: 'boolean' },
      duration: { type: 'string' },
      'rate-duration': { type: 'string' },
      warmup: { type: 'string' },
      'rate-warmup': { type: 'string' },
      rate: { type: 'string' },
      threads: { type: 'string' },
      connections: { type: 'string' },
      pin: { type: 'boolean' },
      scenario: { type: 'string' },
      targets: { type: 'string' },
      'telemetry-signals': { type: 'string' },
      streams: { type: 'string' },
      events: { type: 'string' },
      soak: { type: 'string' },
      source: { type: 'boolean' },
      'node-flags': { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'keep-tmp': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const quick = values.quick ?? truthy(env.BENCH_QUICK);
  const threads = int('threads', values.threads ?? env.BENCH_THREADS, 2);
  const connections = int('connections', values.connections ?? env.BENCH_CONNECTIONS, 64);
  const scenario = scenarioOf(values.scenario ?? env.BENCH_SCENARIO);
  if (connections < threads) throw new Error(`--connections (${connections}) must be at least --threads (${threads})`);
  return {
    quick,
    saturationSeconds: int('duration', values.duration ?? env.BENCH_DURATION, quick ? 2 : 10),
    rateSeconds: int('rate-duration', values['rate-duration'] ?? env.BENCH_RATE_DURATION, quick ? 2 : 10),
    warmupSeconds: int('warmup', values.warmup ?? env.BENCH_WARMUP, quick ? 1 : 2, 0),
    rateWarmupSeconds: int('rate-warmup', values['rate-warmup'] ?? env.BENCH_RATE_WARMUP, quick ? 1 : 15, 0),
    rate: int('rate', values.rate ?? env.BENCH_RATE, 1000),
    threads,
    connections,
    pin: values.pin ?? truthy(env.BENCH_PIN),
    scenario,
    telemetrySignals: telemetrySignals(values['telemetry-signals'] ?? env.BENCH_TELEMETRY_SIGNALS, scenario),
    targets: targets(values.targets ?? env.BENCH_TARGETS, scenario),
    streams: int('streams', values.streams ?? env.BENCH_STREAMS, 8),
    events: int('events', values.events ?? env.BENCH_EVENTS, 1000),
    soakMinutes: int('soak', values.soak ?? env.BENCH_SOAK, 0, 0),
    source: values.source ?? truthy(env.BENCH_SOURCE),
    nodeFlags: nodeFlagsOf(values['node-flags'] ?? env.BENCH_NODE_FLAGS),
    cpuProfile: values['cpu-prof'] ?? false,
    keepTmp: values['keep-tmp'] ?? false,
  };
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

function int(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} expects a whole number ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** `--soak` without a value (last, or followed by another flag) means DEFAULT_SOAK_MINUTES. */
export function withSoakDefault(argv: readonly string[]): string[] {
  return argv.map((a, i) => (a === '--soak' && (i === argv.length - 1 || argv[i + 1]!.startsWith('-')) ? `--soak=${DEFAULT_SOAK_MINUTES}` : a));
}

function nodeFlagsOf(raw: string | undefined): 'default' | 'none' {
  if (raw === undefined || raw === '' || raw === 'default') return 'default';
  if (raw === 'none') return 'none';
  throw new Error(`--node-flags expects default or none, got ${JSON.stringify(raw)}`);
}

function scenarioOf(raw: string | undefined): Scenario | 'all' {
  if (raw === undefined || raw === '') return 'passthrough';
  if (raw === 'all') return 'all';
  if (!(SCENARIOS as readonly string[]).includes(raw))
    throw new Error(`unknown scenario ${JSON.stringify(raw)}; expected one of ${SCENARIOS.join(', ')} or all`);
  return raw as Scenario;
}

/** The targets of one scenario: --targets, checked against what the scenario can run, or its defaults. */
function targets(raw: string | undefined, scenario: Scenario | 'all'): TargetName[] {
  if (raw === undefined || raw === '') return scenario === 'all' ? [] : [...DEFAULT_TARGETS[scenario]];
  if (scenario === 'all') throw new Error('--targets cannot be combined with --scenario all (each scenario runs its default targets)');
  const list = raw.split(',').map((s) => s.trim());
  for (const t of list) {
    if (!(TARGET_NAMES as readonly string[]).includes(t)) throw new Error(`unknown target ${JSON.stringify(t)}; expected some of ${TARGET_NAMES.join(',')}`);
    const allowed = TARGET_SCENARIOS[t as TargetName];
    if (!allowed.includes(scenario)) throw new Error(`target ${t} needs --scenario ${allowed.join(' or ')}`);
  }
  if (new Set(list).size !== list.length) throw new Error(`--targets lists a target twice: ${raw}`);
  return list as TargetName[];
}

function telemetrySignals(raw: string | undefined, scenario: Scenario | 'all'): TelemetrySignal[] {
  if (raw === undefined || raw === '') return [...TELEMETRY_SIGNALS];
  if (scenario !== 'all' && !TELEMETRY_SCENARIOS.includes(scenario))
    throw new Error(`--telemetry-signals needs --scenario ${TELEMETRY_SCENARIOS.join(', ')} or all`);
  const list = raw.split(',').map((s) => s.trim());
  for (const t of list) {
    if (!(TELEMETRY_SIGNALS as readonly string[]).includes(t))
      throw new Error(`unknown telemetry signal ${JSON.stringify(t)}; expected some of ${TELEMETRY_SIGNALS.join(',')}`);
  }
  if (new Set(list).size !== list.length) throw new Error(`--telemetry-signals lists a signal twice: ${raw}`);
  // In a fixed order, so the configuration and the printout read the same whatever the flag's order.
  return TELEMETRY_SIGNALS.filter((t) => list.includes(t));
}
