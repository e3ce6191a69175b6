import { randomUUID } from 'node:crypto';
import type { Attributes } from '@opentelemetry/api';
import { defaultResource, detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler } from '@opentelemetry/sdk-trace';
import type { SidecarConfig } from '../config/index.ts';
import { version as sidecarVersion } from '../version.ts';

export type TelemetryConfig = SidecarConfig['telemetry'];

/** What the configuration and the OTEL_* environment decide, resolved once at start. */
export interface TelemetrySettings {
  enabled: boolean;
  /** The collector's URL, or undefined to let a signal-specific OTEL_EXPORTER_OTLP_*_ENDPOINT decide. */
  endpoint: string | undefined;
  /** For the startup line. */
  endpointShown: string;
  serviceName: string;
  agentType: string;
  environment: string;
  version: string;
  resource: Resource;
  sampler: Sampler;
  samplerShown: string;
}

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:4317';

/** Resolves the telemetry section against the OTEL_* variables; config keys win. */
export function resolveSettings(config: TelemetryConfig, env: NodeJS.ProcessEnv): TelemetrySettings {
  const envEndpoint = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const signalEndpoint = ['TRACES', 'METRICS', 'LOGS'].some((s) => nonEmpty(env[`OTEL_EXPORTER_OTLP_${s}_ENDPOINT`]) !== undefined);
  // On unless turned off: no agent goes unmeasured. Without a collector the exports fail
  // cheaply (nothing is encoded while they do) and are counted; OTEL_SDK_DISABLED=true wins.
  const enabled = (config.enabled ?? true) && !isTrue(env.OTEL_SDK_DISABLED);
  // Without any endpoint, 127.0.0.1 rather than the exporters' `localhost`, which may resolve to ::1 first.
  const endpoint = config.endpoint ?? envEndpoint ?? (signalEndpoint ? undefined : DEFAULT_ENDPOINT);

  const fromEnv = detectResources({ detectors: [envDetector] });
  const envAttrs = fromEnv.attributes;
  const serviceName = config.serviceName ?? nonEmpty(env.OTEL_SERVICE_NAME) ?? stringAttr(envAttrs['service.name']) ?? 'agent';
  const environment =
    config.environment ?? stringAttr(envAttrs['deployment.environment.name']) ?? stringAttr(envAttrs['deployment.environment']) ?? 'unknown';
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
  const { sampler, shown } = resolveSampler(config.traces.sampleRatio, env);
  return {
    enabled,
    endpoint,
    endpointShown: endpoint ?? 'OTEL_EXPORTER_OTLP_*_ENDPOINT',
    serviceName,
    agentType: config.agentType ?? serviceName,
    environment,
    version,
    resource,
    sampler,
    samplerShown: shown,
  };
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

/** telemetry.traces.sampleRatio (always parent-based), else OTEL_TRACES_SAMPLER(_ARG), else parent-based always-on. */
export function resolveSampler(ratio: number | undefined, env: NodeJS.ProcessEnv): { sampler: Sampler; shown: string } {
  if (ratio !== undefined) return { sampler: parentBased(ratio), shown: `parentbased_traceidratio ${ratio}` };
  const name = nonEmpty(env.OTEL_TRACES_SAMPLER)?.toLowerCase() ?? 'parentbased_always_on';
  const arg = Number(env.OTEL_TRACES_SAMPLER_ARG ?? '1');
  const r = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1;
  switch (name) {
    case 'always_on':
      return { sampler: new AlwaysOnSampler(), shown: name };
    case 'always_off':
      return { sampler: new AlwaysOffSampler(), shown: name };
    case 'traceidratio':
      return { sampler: new TraceIdRatioBasedSampler(r), shown: `${name} ${r}` };
    case 'parentbased_always_off':
      return { sampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }), shown: name };
    case 'parentbased_traceidratio':
      return { sampler: parentBased(r), shown: `${name} ${r}` };
    default:
      return { sampler: parentBased(1), shown: 'parentbased_always_on' };
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
