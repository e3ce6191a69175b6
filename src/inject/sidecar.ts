import type { ProviderName } from '../egress/index.ts';
import { credentialEnv } from './custody.ts';
import {
  ANNOTATION,
  CONFIG_DIR,
  CONFIG_KEY,
  CONFIG_VOLUME,
  CREDENTIAL_DIR,
  CREDENTIAL_MODE,
  CREDENTIAL_VOLUME,
  MANAGED_BY,
  PORT_NAME,
  PROVIDER_BASE_PATHS,
  RESOURCES,
  LOCKED_DOWN,
  SIDECAR_CONTAINER,
} from './names.ts';
import type { InjectSettings, SidecarPorts } from './settings.ts';

// What injection adds, as plain objects: the same values for Kubernetes and compose.

export type EnvPairs = Array<[name: string, value: string]>;

/**
 * The variables that point an agent at the sidecar: provider SDK base URLs and OTEL_*. With
 * `relay` (the relay's OTLP/HTTP receiver), the agent's own SDK exports there instead of to
 * the collector.
 */
export function agentEnv(egressOrigin: string, serviceName: string, otelEndpoint: string | undefined, relay?: string): EnvPairs {
  const env: EnvPairs = Object.entries(PROVIDER_BASE_PATHS).map(([name, path]) => [name, `${egressOrigin}${path}`]);
  env.push(['OTEL_SERVICE_NAME', serviceName]);
  if (relay !== undefined) {
    env.push(['OTEL_EXPORTER_OTLP_ENDPOINT', relay], ['OTEL_EXPORTER_OTLP_PROTOCOL', 'http/protobuf'], ['OTEL_PROPAGATORS', 'tracecontext,baggage']);
  } else if (otelEndpoint !== undefined) env.push(['OTEL_EXPORTER_OTLP_ENDPOINT', otelEndpoint]);
  return env;
}

/** Each held provider's key file, as the sidecar container sees it. */
export type CredentialFiles = ReadonlyArray<[ProviderName, string]>;

/**
 * The sidecar's own variables: the flags' environment equivalents, which win over its file;
 * with `credentials`, the files its providers' keys are read from.
 */
export function sidecarEnv(
  ports: SidecarPorts,
  upstream: string,
  serviceName: string,
  otelEndpoint: string | undefined,
  config: boolean,
  credentials: CredentialFiles = [],
  relay = false,
): EnvPairs {
  const env: EnvPairs = [
    ['SIDECAR_UPSTREAM', upstream],
    ['SIDECAR_LISTEN', `0.0.0.0:${ports.ingress}`],
    // Probes come from the node, so the admin listener cannot stay on loopback.
    ['SIDECAR_ADMIN', `0.0.0.0:${ports.admin}`],
  ];
  if (config) env.push(['SIDECAR_CONFIG', `${CONFIG_DIR}/${CONFIG_KEY}`]);
  env.push(...credentialEnv(credentials));
  env.push(['OTEL_SERVICE_NAME', serviceName]);
  if (otelEndpoint !== undefined) env.push(['OTEL_EXPORTER_OTLP_ENDPOINT', otelEndpoint]);
  // "true", not "on": a YAML 1.1 reader (Kubernetes') takes a plain on for a boolean, and an env value must be a string.
  if (relay) env.push(['SIDECAR_RELAY', 'true']);
  return env;
}

/** The downward-API variables the telemetry resource reads (k8s.pod.name and kin). */
const POD_FIELDS = [
  ['POD_NAME', 'metadata.name'],
  ['POD_NAMESPACE', 'metadata.namespace'],
  ['NODE_NAME', 'spec.nodeName'],
] as const;

export interface ContainerInput {
  settings: InjectSettings;
  image: string;
  upstreamPort: number;
  serviceName: string;
  /** The provider keys it holds, read from the credential volume. */
  credentials?: CredentialFiles | undefined;
  /** The OTLP relay on (agent-sidecar.io/relay). */
  relay?: boolean;
}

/** The sidecar container of a pod (a native sidecar when settings.native). */
export function sidecarContainer({ settings, image, upstreamPort, serviceName, credentials, relay = false }: ContainerInput): Record<string, unknown> {
  const { ports } = settings;
  const probe = (path: string, period: number) => ({ httpGet: { path, port: PORT_NAME.admin }, periodSeconds: period, timeoutSeconds: 2, failureThreshold: 3 });
  const env = sidecarEnv(ports, `http://127.0.0.1:${upstreamPort}`, serviceName, settings.otelEndpoint, true, credentials, relay);
  return {
    name: SIDECAR_CONTAINER,
    image,
    // A native sidecar (Kubernetes 1.29+): an init container that keeps running, started
    // before the agent and stopped after it.
    ...(settings.native ? { restartPolicy: 'Always' } : {}),
    ports: [
      { name: PORT_NAME.ingress, containerPort: ports.ingress, protocol: 'TCP' },
      { name: PORT_NAME.egress, containerPort: ports.egress, protocol: 'TCP' },
      { name: PORT_NAME.admin, containerPort: ports.admin, protocol: 'TCP' },
    ],
    env: [...env.map(([name, value]) => ({ name, value })), ...POD_FIELDS.map(([name, fieldPath]) => ({ name, valueFrom: { fieldRef: { fieldPath } } }))],
    resources: RESOURCES,
    livenessProbe: probe('/healthz', 10),
    readinessProbe: probe('/readyz', 5),
    securityContext: LOCKED_DOWN,
    volumeMounts: [
      { name: CONFIG_VOLUME, mountPath: CONFIG_DIR, readOnly: true },
      // The whole volume, never one key with subPath: a subPath mount is not updated when the Secret is.
      ...(credentials === undefined || credentials.length === 0 ? [] : [{ name: CREDENTIAL_VOLUME, mountPath: CREDENTIAL_DIR, readOnly: true }]),
    ],
  };
}

export const configVolume = (configMap: string) => ({ name: CONFIG_VOLUME, configMap: { name: configMap } });

/** The Secret with the provider keys, as a volume for the sidecar alone. */
export const credentialVolume = (secret: string) => ({ name: CREDENTIAL_VOLUME, secret: { secretName: secret, defaultMode: CREDENTIAL_MODE } });

/** The ConfigMap that carries the sidecar's configuration file, as given (its ${env:…} are resolved in the pod). */
export function configMapObject(name: string, namespace: string | undefined, text: string, version: string, joined?: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      labels: { ...MANAGED_BY },
      // `joined`: the line break appending it put after a last line that had none; uninject takes it out again.
      annotations: { [ANNOTATION.status]: JSON.stringify({ version, generated: true, ...(joined === undefined ? {} : { joined }) }) },
    },
    data: { [CONFIG_KEY]: text },
  };
}
