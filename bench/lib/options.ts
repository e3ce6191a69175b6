import { parseArgs } from 'node:util';

/** Everything a run can be told, from flags or BENCH_* variables (flags win). */
export interface BenchOptions {
  /** Seconds of wrk load per target (wrk takes whole seconds). */
  saturationSeconds: number;
  /** Seconds of constant-rate load per target. */
  rateSeconds: number;
  /** Seconds of unmeasured load per target before each measurement. */
  warmupSeconds: number;
  /** Requests per second of the constant-rate phase. */
  rate: number;
  /** wrk threads and connections. */
  threads: number;
  connections: number;
  /** Pin the load generator to CPU 0 and the servers to CPU 1 (taskset). */
  pin: boolean;
  /** passthrough: no auth anywhere; auth: also the sidecar with JWT (JWKS) + RBAC; telemetry: also the sidecar exporting OTLP. */
  scenario: Scenario;
  /** With --scenario telemetry: the signals sidecar-telemetry records and exports. */
  telemetrySignals: TelemetrySignal[];
  /** Which targets to run, in order. */
  targets: TargetName[];
  /** Pass --cpu-prof to the sidecar; profiles land next to the results. */
  cpuProfile: boolean;
  /** Keep the temporary directory (configs, logs) after a successful run. */
  keepTmp: boolean;
  quick: boolean;
}

export const TARGET_NAMES = ['direct', 'nginx', 'undici-proxy', 'sidecar', 'sidecar-auth', 'sidecar-telemetry'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export const SCENARIOS = ['passthrough', 'auth', 'telemetry'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export const DEFAULT_TARGETS: Record<Scenario, readonly TargetName[]> = {
  passthrough: ['direct', 'nginx', 'undici-proxy', 'sidecar'],
  auth: ['direct', 'sidecar', 'sidecar-auth'],
  telemetry: ['direct', 'sidecar', 'sidecar-telemetry'],
};

export const TELEMETRY_SIGNALS = ['traces', 'metrics', 'logs'] as const;
export type TelemetrySignal = (typeof TELEMETRY_SIGNALS)[number];

export const USAGE = `usage: npm run bench -- [options]

  --quick                 smoke run: 2s per target and phase, 1s warm-up   (BENCH_QUICK=1)
  --duration <s>          wrk saturation seconds per target (default 10)   (BENCH_DURATION)
  --rate-duration <s>     constant-rate seconds per target (default 10)    (BENCH_RATE_DURATION)
  --warmup <s>            unmeasured seconds before each measurement (2)   (BENCH_WARMUP)
  --rate <n>              constant rate in requests/s (default 1000)       (BENCH_RATE)
  --threads <n>           wrk threads (default 2)                          (BENCH_THREADS)
  --connections <n>       wrk connections (default 64)                     (BENCH_CONNECTIONS)
  --pin                   taskset: load generator on CPU 0, servers on CPU 1 (BENCH_PIN=1)
  --scenario <name>       passthrough (default), auth or telemetry          (BENCH_SCENARIO)
                          auth adds sidecar-auth (JWT RS256 from a local JWKS + RBAC);
                          every target then gets GET /api/v1/agents with an analyst
                          bearer token. telemetry adds sidecar-telemetry (OTLP gRPC
                          to a receiver inside the bench process)
  --telemetry-signals <list>  with --scenario telemetry: what sidecar-telemetry
                          records, some of traces,metrics,logs (default all)
                                                                  (BENCH_TELEMETRY_SIGNALS)
  --targets <list>        comma-separated subset of direct,nginx,undici-proxy,sidecar
                          (and sidecar-auth with --scenario auth, sidecar-telemetry
                          with --scenario telemetry)                        (BENCH_TARGETS)
                          default: direct,nginx,undici-proxy,sidecar;
                          with --scenario auth: direct,sidecar,sidecar-auth;
                          with --scenario telemetry: direct,sidecar,sidecar-telemetry
  --cpu-prof              write a CPU profile of the sidecar to bench/results/profiles/
  --keep-tmp              keep the temporary directory with configs and logs
  -h, --help              this text
`;

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      quick: { type: 'boolean' },
      duration: { type: 'string' },
      'rate-duration': { type: 'string' },
      warmup: { type: 'string' },
      rate: { type: 'string' },
      threads: { type: 'string' },
      connections: { type: 'string' },
      pin: { type: 'boolean' },
      scenario: { type: 'string' },
      targets: { type: 'string' },
      'telemetry-signals': { type: 'string' },
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
    rate: int('rate', values.rate ?? env.BENCH_RATE, 1000),
    threads,
    connections,
    pin: values.pin ?? truthy(env.BENCH_PIN),
    scenario,
    telemetrySignals: telemetrySignals(values['telemetry-signals'] ?? env.BENCH_TELEMETRY_SIGNALS, scenario),
    targets: targets(values.targets ?? env.BENCH_TARGETS, scenario),
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

function scenarioOf(raw: string | undefined): Scenario {
  if (raw === undefined || raw === '') return 'passthrough';
  if (!(SCENARIOS as readonly string[]).includes(raw)) throw new Error(`unknown scenario ${JSON.stringify(raw)}; expected one of ${SCENARIOS.join(', ')}`);
  return raw as Scenario;
}

function targets(raw: string | undefined, scenario: Scenario): TargetName[] {
  if (raw === undefined || raw === '') return [...DEFAULT_TARGETS[scenario]];
  const list = raw.split(',').map((s) => s.trim());
  for (const t of list) {
    if (!(TARGET_NAMES as readonly string[]).includes(t)) throw new Error(`unknown target ${JSON.stringify(t)}; expected some of ${TARGET_NAMES.join(',')}`);
  }
  if (list.includes('sidecar-auth') && scenario !== 'auth') throw new Error('target sidecar-auth needs --scenario auth');
  if (list.includes('sidecar-telemetry') && scenario !== 'telemetry') throw new Error('target sidecar-telemetry needs --scenario telemetry');
  if (new Set(list).size !== list.length) throw new Error(`--targets lists a target twice: ${raw}`);
  return list as TargetName[];
}

function telemetrySignals(raw: string | undefined, scenario: Scenario): TelemetrySignal[] {
  if (raw === undefined || raw === '') return [...TELEMETRY_SIGNALS];
  if (scenario !== 'telemetry') throw new Error('--telemetry-signals needs --scenario telemetry');
  const list = raw.split(',').map((s) => s.trim());
  for (const t of list) {
    if (!(TELEMETRY_SIGNALS as readonly string[]).includes(t)) throw new Error(`unknown telemetry signal ${JSON.stringify(t)}; expected some of ${TELEMETRY_SIGNALS.join(',')}`);
  }
  if (new Set(list).size !== list.length) throw new Error(`--telemetry-signals lists a signal twice: ${raw}`);
  // In a fixed order, so the configuration and the printout read the same whatever the flag's order.
  return TELEMETRY_SIGNALS.filter((t) => list.includes(t));
}
