import type http from 'node:http';
import type { Meter, Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { AggregationTemporality, InstrumentType, MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import type { SidecarConfig } from '../config/index.ts';
import { componentLogger, type Logger } from '../log/index.ts';
import { createLogThrottle } from '../stores/index.ts';
import { createAccessLog } from './access-log.ts';
import { RequestTracer } from './tracer.ts';
import { createHistograms, createInstruments, HistogramProducer, type Instruments } from './instruments.ts';
import { METRIC, TRACE_HEADERS } from './names.ts';
import { createTelemetryObserver, type TelemetryObserver } from './observer.ts';
import { createDropCounter, createLogBatcher, createMetricExporter, createSpanPipeline, routeSdkErrors } from './pipeline.ts';
import { createPrometheusEndpoint } from './prometheus.ts';
import type { TelemetryProtection } from './protection.ts';
import { createSessionTracker } from './sessions.ts';
import { resolveSettings, type TelemetrySettings } from './settings.ts';
import type { DropCounter, LogSink } from './signal.ts';
import { createRelay, createRelayCore, placeOf, relayAddresses, type Relay, type RelayCore, type RelayReceiver } from './relay/index.ts';
import { startRelayThread, type WorkerSource } from './relay/thread.ts';

export {
  FIRST_CHUNK_BUCKETS,
  GEN_AI,
  GEN_AI_DURATION_BUCKETS,
  LLM_METRIC,
  MCP_BUCKETS,
  METRIC,
  REFERENCE_BUCKETS,
  RPC_ATTR,
  TOKEN_BUCKETS,
  TRACE_HEADERS,
} from './names.ts';
export { prometheusName } from './prometheus.ts';
export { resolveSettings, DEFAULT_ENDPOINT, type TelemetrySettings } from './settings.ts';
export { observeCaches, type CacheCounts, type CacheStats } from './caches.ts';
export { callerContext, traceHeadersOf } from './propagation.ts';
export { tallyCounter, type Tallies, type Tally } from './instruments.ts';
export type { AccessLog, AccessLevel, AccessRecord } from './access-log.ts';
export { nowNs, type LogEntry } from './otlp/logs.ts';
export type { TelemetryObserver } from './observer.ts';
export type { TelemetryProtection } from './protection.ts';
export type { LogSink } from './signal.ts';
export type { ExportConfig } from './pipeline.ts';
export { createRelayCore, MalformedOtlp } from './relay/index.ts';
export { RELAY_THREAD, WORKER_BUNDLE, type FromWorker, type RelayThreadData, type ToWorker, type WorkerSource } from './relay/thread.ts';

/**
 * The SDK as wired for this process: what features record with (meter, tracer, log sink),
 * what the sidecar serves and strips, and its lifecycle. Features instrument themselves
 * with these (the OpenTelemetry way: instrumentation depends on the API only), so this
 * folder imports none of them.
 */
export interface Telemetry {
  readonly enabled: boolean;
  /** Watches every request: spans, metrics, the access record; finds a request's live span by id. Undefined when telemetry is off. */
  readonly observer: TelemetryObserver | undefined;
  /** Client headers never forwarded: a client's traceparent, tracestate and baggage (ours replace them). */
  readonly stripHeaders: readonly string[];
  /** GET /metrics for the admin listener, or undefined. */
  readonly metricsHandler: http.RequestListener | undefined;
  /** For the startup line. */
  readonly describe: string;
  /** The settings resolved once at start (configuration, OTEL_* variables, defaults), for whoever else needs them (egress, the wrapper). */
  readonly settings: TelemetrySettings;
  /** The meter and tracer features record with (audit, revocation, caches, LLM egress); undefined when telemetry, or traces, are off. */
  readonly meter: Meter | undefined;
  readonly tracer: Tracer | undefined;
  /** OTLP log records (audit events); undefined when telemetry, or telemetry.logs.otlp, is off. */
  readonly logs: LogSink | undefined;
  /** The OTLP relay's receivers, for the sidecar to bind and drain; empty when the relay is off. */
  readonly relayReceivers: readonly RelayReceiver[];
  /** Exports what is queued now. */
  forceFlush(): Promise<void>;
  /** Flushes within telemetry.shutdownTimeout, then stops; safe to call twice. */
  shutdown(): Promise<void>;
}

export interface TelemetryOptions {
  env?: NodeJS.ProcessEnv;
  /** Data protection of everything exported (spans, log records, metric attributes) and of the access lines on stdout. */
  protect?: TelemetryProtection | undefined;
  /** Build every part, start none: the metric reader gets no timer, so nothing is exported (validate). */
  offline?: boolean;
  /**
   * `run -- <command>` starts the agent: the OTLP relay is on unless telemetry.relay.enabled
   * says otherwise, and its receivers take free loopback ports unless addresses are configured.
   */
  runsAgent?: boolean;
  /** Where the relay's worker thread code is (src/relay-thread.ts); without it, telemetry.relay.thread relays on this thread. */
  relayWorker?: WorkerSource | undefined;
}

/**
 * The OpenTelemetry SDK, assembled explicitly (providers, batch processors, readers; no
 * auto-instrumentation): OTLP gRPC for traces, metrics and logs, Prometheus text on the admin
 * listener, JSON access lines on stdout. Export never touches a request: queues are bounded,
 * drops are counted (agent_telemetry_dropped_total), failures are logged once per interval.
 *
 * @example
 * const telemetry = createTelemetry(config, logger);
 * createSidecar({ config, logger, observers: telemetry.observer ? [telemetry.observer] : [], onShutdown: [() => telemetry.shutdown()] });
 */
export function createTelemetry(config: Readonly<SidecarConfig>, logger: Logger, options: TelemetryOptions = {}): Telemetry {
  const t = config.telemetry;
  const settings = resolveSettings(t, options.env ?? process.env);
  const relayAt = relayAddresses(t.relay, settings.enabled, options.runsAgent === true);
  if (!settings.enabled) return disabledTelemetry(settings);

  const log = componentLogger(logger, 'agent-sidecar.telemetry');
  for (const w of settings.warnings)
    log.warn({ event_type: 'telemetry_config', code: w.code, variable: w.variable, value: w.value, using: w.using }, w.message);
  const throttle = createLogThrottle(log, t.errorLogInterval);
  routeSdkErrors(throttle);
  let instruments: Instruments | undefined;
  const drops = createDropCounter(() => instruments?.dropped, throttle);
  const { resource } = settings;

  // The request-path histograms are aggregated by us and handed to every reader by a producer.
  const histograms = createHistograms();
  const readers: IMetricReader[] = [];
  if (settings.metrics.otlp) {
    const exporter = createMetricExporter(settings, drops, options.protect);
    const reader = new PeriodicExportingMetricReader({
      exporter,
      exportIntervalMillis: settings.metrics.exportInterval,
      exportTimeoutMillis: settings.metrics.exportTimeout,
      metricProducers: [
        new HistogramProducer(histograms.all, resource, exporter.selectAggregationTemporality?.(InstrumentType.HISTOGRAM) ?? AggregationTemporality.CUMULATIVE),
      ],
    });
    // A reader starts its export timer when a provider takes it: offline, it is built (its
    // settings checked) and left out.
    if (options.offline !== true) readers.push(reader);
  }
  const prometheus =
    t.metrics.prometheus && config.admin.enabled
      ? createPrometheusEndpoint(new HistogramProducer(histograms.all, resource, AggregationTemporality.CUMULATIVE))
      : undefined;
  if (prometheus !== undefined) readers.push(prometheus.reader);
  const meterProvider = new MeterProvider({ resource, readers });
  const meter = meterProvider.getMeter('agent-sidecar');
  instruments = createInstruments(meter, histograms);

  const spanPipeline = settings.traces.enabled ? createSpanPipeline(settings, drops, options.protect) : undefined;
  const tracerProvider = spanPipeline === undefined ? undefined : new TracerProvider({ resource, sampler: settings.sampler, spanProcessors: [spanPipeline] });
  // The request path's SERVER and CLIENT spans (tracer.ts says why not the SDK's tracer); the
  // provider's tracer serves the rest, and both end in the same pipeline.
  const requestTracer =
    spanPipeline === undefined
      ? undefined
      : new RequestTracer({ sampler: settings.sampler, resource, scope: { name: 'agent-sidecar' }, processor: spanPipeline });
  // Access records and audit events skip the SDK's log records (access-log.ts says why).
  const logBatcher = settings.logs.otlp ? createLogBatcher(settings, resource, settings.version, drops, options.protect) : undefined;

  const relay: Relay | undefined =
    relayAt === undefined
      ? undefined
      : createRelay({
          config: t.relay,
          addresses: relayAt,
          exportConfig: settings,
          protect: options.protect?.agent,
          resource,
          drops,
          core:
            t.relay.thread && options.offline !== true && options.relayWorker !== undefined
              ? relayThread(options.relayWorker, config, settings, resource, drops, log, () =>
                  createRelayCore({ queueBytes: t.relay.queueBytes, exportConfig: settings, protect: options.protect?.agent, extra: placeOf(resource), drops }),
                )
              : undefined,
        });

  const sessions = createSessionTracker(t.metrics.sessionWindow, t.metrics.maxSessions);
  const agentType = settings.agentType;
  const sessionAttrs = { agent_type: agentType };
  meter
    .createObservableGauge(METRIC.activeSessions, {
      unit: '{session}',
      description: 'Distinct sessions with a request within telemetry.metrics.sessionWindow.',
    })
    .addCallback((r) => r.observe(sessions.count(), sessionAttrs));
  const infoAttrs = { version: settings.version, environment: settings.environment, agent_type: agentType };
  meter
    .createObservableGauge(METRIC.systemInfo, { description: 'Always 1; the labels say which version runs where.' })
    .addCallback((r) => r.observe(1, infoAttrs));

  // Records are marked protected exactly when protection wraps this log (the next line): the
  // log batcher's export protection then passes them.
  const accessLog = createAccessLog(settings.logs.stdout ? logger : undefined, logBatcher, options.protect !== undefined);
  const protectedAccessLog = options.protect === undefined ? accessLog : options.protect.accessLog(accessLog);
  const observer = createTelemetryObserver({
    instruments,
    agentType,
    tracer: requestTracer,
    propagator: new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    trustIncoming: t.traces.trustIncoming,
    recordUser: t.traces.recordUser,
    upstream: new URL(config.upstream.url),
    scheme: config.listen.tls ? 'https' : 'http',
    sessions,
    sessionHeader: t.metrics.sessionHeader,
    access: protectedAccessLog,
  });

  let stopping: Promise<void> | undefined;
  const signals = [settings.traces.enabled ? 'traces' : '', settings.metrics.otlp ? 'metrics' : '', settings.logs.otlp ? 'logs' : ''].filter(Boolean);
  const sinks = [settings.logs.stdout ? 'stdout' : '', settings.logs.otlp ? 'otlp' : ''].filter(Boolean).join(' and ') || 'off';
  const describe =
    signals.length === 0
      ? `otlp off${prometheus ? '; /metrics on admin' : ''}; access records ${sinks}`
      : `otlp ${settings.endpointShown} (${signals.join(', ')}; sampler ${settings.samplerShown}${settings.encoder === 'sdk' ? "; the SDK's encoders" : ''})${prometheus ? '; /metrics on admin' : ''}; access records ${sinks}`;

  return {
    enabled: true,
    settings,
    observer,
    // With telemetry on, the sidecar owns the trace headers: with traces on it continues a
    // trusted caller's context or starts its own; with traces off a caller's context is not
    // passed on either, so an untrusted client can never plant one.
    stripHeaders: TRACE_HEADERS,
    metricsHandler: prometheus?.handler,
    describe,
    meter,
    tracer: tracerProvider?.getTracer('agent-sidecar'),
    logs: logBatcher,
    relayReceivers: relay?.receivers ?? [],
    async forceFlush() {
      await Promise.allSettled([tracerProvider?.forceFlush(), meterProvider.forceFlush(), logBatcher?.forceFlush(), relay?.forceFlush()]);
    },
    shutdown() {
      stopping ??= (async () => {
        const all = Promise.allSettled([tracerProvider?.shutdown(), meterProvider.shutdown(), logBatcher?.shutdown(), relay?.shutdown()]);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((resolve) => {
          timer = setTimeout(resolve, t.shutdownTimeout, false);
          timer.unref();
        });
        const done = await Promise.race([all.then(() => true), late]);
        clearTimeout(timer);
        if (!done)
          throttle.warn(
            { event_type: 'telemetry_shutdown', timeout_ms: t.shutdownTimeout },
            'telemetry flush did not finish within telemetry.shutdownTimeout; the rest is dropped',
          );
      })();
      return stopping;
    },
  };
}

function disabledTelemetry(settings: TelemetrySettings): Telemetry {
  return {
    enabled: false,
    settings,
    observer: undefined,
    stripHeaders: [],
    metricsHandler: undefined,
    describe: 'off',
    meter: undefined,
    tracer: undefined,
    logs: undefined,
    relayReceivers: [],
    forceFlush: async () => {},
    shutdown: async () => {},
  };
}

/**
 * The relay's worker thread, with what it needs to rebuild the telemetry rule set and the
 * exporters. Requests wait for it to start; should it not start, or stop later, the requests
 * it held are refused (the agent's exporter retries them) and the rest are relayed on this
 * thread (`local`).
 */
function relayThread(
  source: WorkerSource,
  config: Readonly<SidecarConfig>,
  settings: ReturnType<typeof resolveSettings>,
  resource: ReturnType<typeof resolveSettings>['resource'],
  drops: DropCounter,
  log: Logger,
  local: () => RelayCore,
): RelayCore {
  let fallback: RelayCore | undefined;
  let stopping = false;
  const thread = startRelayThread(
    source,
    {
      config,
      queueBytes: config.telemetry.relay.queueBytes,
      exportConfig: {
        endpoints: settings.endpoints,
        headers: settings.headers,
        traces: { exportTimeout: settings.traces.exportTimeout },
        metrics: { exportTimeout: settings.metrics.exportTimeout },
        logs: { exportTimeout: settings.logs.exportTimeout },
      },
      extra: placeOf(resource),
    },
    drops,
    (err) => {
      if (stopping) return;
      fallback = local();
      log.error(
        { event_type: 'relay_thread_failed', err: { message: err.message } },
        `OTLP relay: its worker thread stopped (${err.message}); the relay goes on in the proxying thread`,
      );
    },
  );
  return {
    async accept(signal, body) {
      // Nothing is handed to a worker that has not started: if it cannot, this request is relayed here.
      if (fallback === undefined) await thread.ready.catch(() => {});
      return (fallback ?? thread).accept(signal, body);
    },
    forceFlush: async () => {
      await Promise.all([thread.forceFlush(), fallback?.forceFlush()]);
    },
    shutdown: async () => {
      stopping = true;
      await Promise.all([thread.shutdown(), fallback?.shutdown()]);
    },
  };
}
