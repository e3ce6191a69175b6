import { randomUUID } from 'node:crypto';
import type { Attributes } from '@opentelemetry/api';
import { defaultResource, detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler } from '@opentelemetry/sdk-trace';
import type { SidecarConfig } from '../config/index.ts';
import { MAX_TIMER_MS } from '../config/index.ts';
import type { SidecarErrorCode } from '../errors/index.ts';
import { version as sidecarVersion } from '../version.ts';

export type TelemetryConfig = SidecarConfig['telemetry'];

/** A batching signal's effective settings (traces, logs). */
export interface BatchSettings {
  /** Items waiting for export at most. */
  queueSize: number;
  /** Items per export at most; never more than queueSize. */
  batchSize: number;
  /** How long an item may wait for its batch (ms). */
  scheduledDelay: number;
  /** One export's timeout (ms). */
  exportTimeout: number;
}

/** An OTEL_* variable whose value was ignored: one warning line at start. */
export interface TelemetryEnvWarning {
  readonly code: Extract<SidecarErrorCode, 'SIDECAR_OTEL_ENV_INVALID'>;
  readonly variable: string;
  readonly value: string;
  /** What applies instead, e.g. `2048 (the default)`. */
  readonly using: string;
  readonly message: string;
}

/** What the configuration and the OTEL_* environment decide, resolved once at start. */
export interface TelemetrySettings {
  enabled: boolean;
  /**
   * Each signal's collector URL: telemetry.endpoint, else OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT,
   * else OTEL_EXPORTER_OTLP_ENDPOINT, else DEFAULT_ENDPOINT.
   */
  endpoints: Readonly<Record<'traces' | 'metrics' | 'logs', string>>;
  /** For the startup line: the one URL, or each signal's when they differ. */
  endpointShown: string;
  serviceName: string;
  agentType: string;
  environment: string;
  version: string;
  resource: Resource;
  sampler: Sampler;
  samplerShown: string;
  /** telemetry.headers: export metadata over OTEL_EXPORTER_OTLP_HEADERS (which the exporters read). */
  headers: Readonly<Record<string, string>>;
  /** telemetry.encoder: the sidecar's OTLP encoders, or the SDK's serializers (troubleshooting). */
  encoder: 'sidecar' | 'sdk';
  /** Each signal: config key, else its OTEL_* variable, else our default. `enabled`/`otlp`: exported over OTLP at all. */
  traces: BatchSettings & { enabled: boolean };
  /** `stdout`: the access record's JSON line, on by default only when records are not exported (one sink per record). */
  logs: BatchSettings & { otlp: boolean; stdout: boolean };
  metrics: { otlp: boolean; exportInterval: number; exportTimeout: number };
  /** The OTEL_* variables ignored for a bad value, one each; empty when telemetry is off. */
  warnings: readonly TelemetryEnvWarning[];
}

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:4317';

/** What we ship when neither a config key nor an OTEL_* variable says otherwise (metrics: 15 s, not the spec's 60 s). */
export const TELEMETRY_DEFAULTS = {
  exportTimeout: 10_000,
  traces: { queueSize: 2048, batchSize: 512, scheduledDelay: 5000 },
  logs: { queueSize: 2048, batchSize: 512, scheduledDelay: 1000 },
  metrics: { exportInterval: 15_000 },
} as const;

/**
 * A timeout of 0 means no limit (the spec's Timeout type): a day in practice, which is also
 * the longest export deadline sent. A gRPC deadline near the longest timer (2^31 - 1 ms)
 * overflows in grpc-js servers, which then cancel the call after 1 ms.
 */
export const NO_TIMEOUT = 86_400_000;

/** Resolves the telemetry section against the OTEL_* variables; config keys win. */
export function resolveSettings(config: TelemetryConfig, env: NodeJS.ProcessEnv): TelemetrySettings {
  // On unless turned off: no agent goes unmeasured. Without a collector the exports fail
  // cheaply (nothing is encoded while they do) and are counted; OTEL_SDK_DISABLED=true wins.
  const enabled = (config.enabled ?? true) && !isTrue(env.OTEL_SDK_DISABLED);
  const endpoints = resolveEndpoints(config.endpoint, env);

  const fromEnv = detectResources({ detectors: [envDetector] });
  const envAttrs = fromEnv.attributes;
  const serviceName = config.serviceName ?? nonEmpty(env.OTEL_SERVICE_NAME) ?? stringAttr(envAttrs['service.name']) ?? 'agent';
  const environment = config.environment ?? stringAttr(envAttrs['deployment.environment.name']) ?? stringAttr(envAttrs['deployment.environment']) ?? 'unknown';
  const version = config.serviceVersion ?? stringAttr(envAttrs['service.version']) ?? sidecarVersion;
  const ours: Attributes = {
    'service.name': serviceName,
    'service.version': version,
    'service.instance.id': stringAttr(envAttrs['service.instance.id']) ?? randomUUID(),
    'deployment.environment.name': environment,
    ...kubernetesAttributes(env),
    ...config.resourceAttributes,
  };
  const resource = defaultResource().merge(fromEnv).merge(resourceFromAttributes(ours));
  const { sampler, shown, warnings: samplerWarnings } = resolveSampler(config.traces.sampleRatio, env);
  const exports = resolveExportSettings(config, env);
  return {
    enabled,
    endpoints,
    endpointShown: showEndpoints(endpoints),
    serviceName,
    agentType: config.agentType ?? serviceName,
    environment,
    version,
    resource,
    sampler,
    samplerShown: shown,
    headers: config.headers,
    encoder: config.encoder,
    ...exports,
    warnings: enabled ? [...exports.warnings, ...samplerWarnings] : [],
  };
}

/**
 * The spec's order, resolved here rather than by the exporters (which read process.env only):
 * telemetry.endpoint, else the signal's variable, else the general one, else 127.0.0.1:4317
 * (not the exporters' `localhost`, which may resolve to ::1 first).
 */
export function resolveEndpoints(configured: string | undefined, env: NodeJS.ProcessEnv): TelemetrySettings['endpoints'] {
  const general = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const of = (signal: string) => configured ?? nonEmpty(env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]) ?? general ?? DEFAULT_ENDPOINT;
  return { traces: of('TRACES'), metrics: of('METRICS'), logs: of('LOGS') };
}

function showEndpoints(e: TelemetrySettings['endpoints']): string {
  if (e.traces === e.metrics && e.metrics === e.logs) return e.traces;
  return `traces ${e.traces}, metrics ${e.metrics}, logs ${e.logs}`;
}

type ExportSettings = Pick<TelemetrySettings, 'traces' | 'logs' | 'metrics' | 'warnings'>;

/**
 * Batching, export timeouts and exporter selection: a key the configuration has wins, else the
 * standard variable (OTEL_BSP_*, OTEL_BLRP_*, OTEL_METRIC_EXPORT_*, OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT,
 * OTEL_{TRACES,METRICS,LOGS}_EXPORTER), else TELEMETRY_DEFAULTS. A variable with a value the
 * spec does not allow is ignored with a warning, as if unset.
 *
 * A signal's export timeout is telemetry.exportTimeout, else the lower of the exporter's
 * (OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT, else OTEL_EXPORTER_OTLP_TIMEOUT, else 10 s) and the
 * processor's (OTEL_BSP_EXPORT_TIMEOUT, OTEL_BLRP_EXPORT_TIMEOUT, OTEL_METRIC_EXPORT_TIMEOUT),
 * which bounds the same export. Timeouts of 0 mean no limit.
 */
export function resolveExportSettings(config: TelemetryConfig, env: NodeJS.ProcessEnv): ExportSettings {
  const r = new EnvReader(env);
  const d = TELEMETRY_DEFAULTS;
  const configTimeout = config.exportTimeout === undefined ? undefined : noLimitIfZero(config.exportTimeout);
  const exportTimeout = (signal: 'TRACES' | 'METRICS' | 'LOGS', processor: string): number => {
    if (configTimeout !== undefined) return configTimeout;
    const general = r.number('OTEL_EXPORTER_OTLP_TIMEOUT', 'timeout', () => `${d.exportTimeout} ms (the default)`);
    const exporter =
      r.number(`OTEL_EXPORTER_OTLP_${signal}_TIMEOUT`, 'timeout', () =>
        general === undefined ? `${d.exportTimeout} ms (the default)` : `${shownMs(general)} (OTEL_EXPORTER_OTLP_TIMEOUT)`,
      ) ??
      general ??
      d.exportTimeout;
    const bound = r.number(processor, 'timeout', () => `${shownMs(exporter)} (the exporter's timeout)`);
    return Math.min(exporter, bound ?? NO_TIMEOUT);
  };
  const batch = (
    c: { queueSize?: number | undefined; batchSize?: number | undefined; scheduledDelay?: number | undefined },
    prefix: 'OTEL_BSP' | 'OTEL_BLRP',
    def: { queueSize: number; batchSize: number; scheduledDelay: number },
  ) => {
    const queueSize = c.queueSize ?? r.number(`${prefix}_MAX_QUEUE_SIZE`, 'count', () => `${def.queueSize} (the default)`) ?? def.queueSize;
    const batchSize = c.batchSize ?? r.number(`${prefix}_MAX_EXPORT_BATCH_SIZE`, 'count', () => `${def.batchSize} (the default)`) ?? def.batchSize;
    const scheduledDelay =
      c.scheduledDelay ?? r.number(`${prefix}_SCHEDULE_DELAY`, 'duration', () => `${def.scheduledDelay} ms (the default)`) ?? def.scheduledDelay;
    return { queueSize, batchSize: Math.min(batchSize, queueSize), scheduledDelay };
  };

  const traces = {
    enabled: config.traces.enabled ?? r.exporter('OTEL_TRACES_EXPORTER', []) ?? true,
    ...batch(config.traces, 'OTEL_BSP', d.traces),
    exportTimeout: exportTimeout('TRACES', 'OTEL_BSP_EXPORT_TIMEOUT'),
  };
  const logsOtlp = config.logs.otlp ?? r.exporter('OTEL_LOGS_EXPORTER', []) ?? true;
  const logs = {
    otlp: logsOtlp,
    // One sink per access record: a node log agent shipping stdout and the collector would otherwise ship each twice.
    stdout: config.logs.stdout ?? !logsOtlp,
    ...batch(config.logs, 'OTEL_BLRP', d.logs),
    exportTimeout: exportTimeout('LOGS', 'OTEL_BLRP_EXPORT_TIMEOUT'),
  };
  const exportInterval =
    config.metrics.exportInterval ??
    r.number('OTEL_METRIC_EXPORT_INTERVAL', 'interval', () => `${d.metrics.exportInterval} ms (the default)`) ??
    d.metrics.exportInterval;
  const metrics = {
    // prometheus: pulled from the admin /metrics (telemetry.metrics.prometheus), so no push.
    otlp: config.metrics.otlp ?? r.exporter('OTEL_METRICS_EXPORTER', ['prometheus']) ?? true,
    exportInterval,
    // The reader starts the next export after an interval whatever happened to the last: a
    // longer deadline would let abandoned exports pile up while the collector hangs.
    exportTimeout: Math.min(exportTimeout('METRICS', 'OTEL_METRIC_EXPORT_TIMEOUT'), exportInterval),
  };
  return { traces, logs, metrics, warnings: r.warnings };
}

type NumberKind = 'count' | 'duration' | 'interval' | 'timeout';
const EXPECTED: Record<NumberKind, string> = {
  count: 'a positive integer',
  duration: 'a whole number of milliseconds',
  interval: 'a whole number of milliseconds above 0',
  timeout: 'a whole number of milliseconds, 0 for no limit',
};

/** Reads OTEL_* variables as the spec types them; each bad one is ignored and warned about once. */
class EnvReader {
  readonly #env: NodeJS.ProcessEnv;
  readonly #warned = new Map<string, TelemetryEnvWarning>();
  constructor(env: NodeJS.ProcessEnv) {
    this.#env = env;
  }

  get warnings(): TelemetryEnvWarning[] {
    return [...this.#warned.values()];
  }

  /** Undefined when unset, empty or invalid. Timeouts of 0 come back as NO_TIMEOUT. */
  number(name: string, kind: NumberKind, using: () => string): number | undefined {
    const raw = this.#env[name];
    const text = nonEmpty(raw);
    if (text === undefined) return undefined;
    const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    const min = kind === 'count' || kind === 'interval' ? 1 : 0;
    // The spec's range for integers, durations and timeouts tops out at the longest timer.
    if (!(n >= min && n <= MAX_TIMER_MS)) {
      this.warn(name, raw!, `ignored, expected ${EXPECTED[kind]}`, using());
      return undefined;
    }
    return kind === 'timeout' ? noLimitIfZero(n) : n;
  }

  /**
   * OTEL_{TRACES,METRICS,LOGS}_EXPORTER, a comma list: true when it has otlp, false when it has
   * only none (or `noPush`: values that mean no OTLP push), undefined when unset. Exporters we
   * do not have (zipkin, console) are ignored with a warning; left with none, as if unset.
   */
  exporter(name: string, noPush: readonly string[]): boolean | undefined {
    const raw = this.#env[name];
    const values = (raw ?? '')
      .split(',')
      .map((v) => v.trim().toLowerCase())
      .filter((v) => v !== '');
    if (values.length === 0) return undefined;
    const known = ['otlp', 'none', ...noPush];
    const unknown = values.filter((v) => !known.includes(v));
    const rest = values.filter((v) => known.includes(v));
    const result = rest.includes('otlp') ? true : rest.length > 0 ? false : undefined;
    if (unknown.length > 0) {
      const available = `${known.slice(0, -1).join(', ')} or ${known.at(-1)}`;
      this.warn(name, raw!, `${unknown.join(', ')} ignored, the exporters here are ${available}`, result === false ? 'no OTLP export' : 'otlp');
    }
    return result;
  }

  /** Records that `variable` was ignored; once per variable. */
  warn(variable: string, value: string, what: string, using: string): void {
    if (this.#warned.has(variable)) return;
    const message = `${variable}=${JSON.stringify(value)}: ${what}; using ${using}`;
    this.#warned.set(variable, { code: 'SIDECAR_OTEL_ENV_INVALID', variable, value, using, message });
  }
}

function noLimitIfZero(ms: number): number {
  return ms === 0 ? NO_TIMEOUT : Math.min(ms, NO_TIMEOUT);
}

function shownMs(ms: number): string {
  return ms === NO_TIMEOUT ? 'no limit (a day)' : `${ms} ms`;
}

/** The downward API's usual variables; only those present become attributes. */
export function kubernetesAttributes(env: NodeJS.ProcessEnv): Attributes {
  if (env.KUBERNETES_SERVICE_HOST === undefined) return {};
  const attrs: Attributes = {};
  const put = (key: string, value: string | undefined) => {
    if (value !== undefined && value !== '') attrs[key] = value;
  };
  put('k8s.pod.name', env.POD_NAME ?? env.K8S_POD_NAME ?? env.HOSTNAME);
  put('k8s.namespace.name', env.POD_NAMESPACE ?? env.K8S_NAMESPACE_NAME);
  put('k8s.pod.uid', env.POD_UID ?? env.K8S_POD_UID);
  put('k8s.node.name', env.NODE_NAME ?? env.K8S_NODE_NAME);
  put('k8s.container.name', env.CONTAINER_NAME ?? env.K8S_CONTAINER_NAME);
  return attrs;
}

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'];

/**
 * telemetry.traces.sampleRatio (always parent-based), else OTEL_TRACES_SAMPLER(_ARG), else
 * parent-based always-on. A sampler we do not have (jaeger_remote, xray) or a ratio outside
 * 0..1 is ignored with a warning, as the spec asks.
 */
export function resolveSampler(ratio: number | undefined, env: NodeJS.ProcessEnv): { sampler: Sampler; shown: string; warnings: TelemetryEnvWarning[] } {
  const r = new EnvReader(env);
  const done = (sampler: Sampler, shown: string) => ({ sampler, shown, warnings: r.warnings });
  if (ratio !== undefined) return done(parentBased(ratio), `parentbased_traceidratio ${ratio}`);
  const rawName = env.OTEL_TRACES_SAMPLER;
  let name = nonEmpty(rawName)?.toLowerCase() ?? 'parentbased_always_on';
  if (!SAMPLERS.includes(name)) {
    r.warn('OTEL_TRACES_SAMPLER', rawName!, `ignored, the samplers here are ${SAMPLERS.join(', ')}`, 'parentbased_always_on (the default)');
    name = 'parentbased_always_on';
  }
  const arg = (): number => {
    const raw = env.OTEL_TRACES_SAMPLER_ARG;
    const text = nonEmpty(raw);
    if (text === undefined) return 1;
    const n = Number(text);
    if (Number.isFinite(n) && n >= 0 && n <= 1) return n;
    r.warn('OTEL_TRACES_SAMPLER_ARG', raw!, 'ignored, expected a ratio from 0 to 1', '1 (the default)');
    return 1;
  };
  switch (name) {
    case 'always_on':
      return done(new AlwaysOnSampler(), name);
    case 'always_off':
      return done(new AlwaysOffSampler(), name);
    case 'traceidratio': {
      const a = arg();
      return done(new TraceIdRatioBasedSampler(a), `${name} ${a}`);
    }
    case 'parentbased_always_off':
      return done(new ParentBasedSampler({ root: new AlwaysOffSampler() }), name);
    case 'parentbased_traceidratio': {
      const a = arg();
      return done(parentBased(a), `${name} ${a}`);
    }
    default:
      return done(parentBased(1), 'parentbased_always_on');
  }
}

function parentBased(ratio: number): Sampler {
  return new ParentBasedSampler({ root: ratio >= 1 ? new AlwaysOnSampler() : new TraceIdRatioBasedSampler(ratio) });
}

function isTrue(v: string | undefined): boolean {
  return v?.trim().toLowerCase() === 'true';
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t === undefined || t === '' ? undefined : t;
}

function stringAttr(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}
