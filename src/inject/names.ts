/**
 * The names injection writes into manifests. They are part of the output users review and
 * of the contract with uninject, so they live in one place.
 */

/** Annotation keys (on the pod template, or the workload's own metadata). */
export const ANNOTATION = {
  /** "false" opts a workload out; "true" asks for injection (an error on kinds we cannot inject). */
  inject: 'agent-sidecar.io/inject',
  /** The agent container's port (number or port name) that becomes the sidecar's upstream. */
  upstreamPort: 'agent-sidecar.io/upstream-port',
  /** The ConfigMap holding the sidecar's configuration. */
  config: 'agent-sidecar.io/config',
  /** The sidecar image. */
  image: 'agent-sidecar.io/image',
  /** Which container is the agent, when the pod has several. */
  container: 'agent-sidecar.io/container',
  /** The Secret with the provider keys: the sidecar holds them, the agent gets a placeholder (credential custody). */
  credentialSecret: 'agent-sidecar.io/credential-secret',
  /** Which key of that Secret (compose: which secret) holds which provider's key: anthropic=anthropic-api-key,openai=openai-api-key. */
  credentialKeys: 'agent-sidecar.io/credential-keys',
  /** "true": the sidecar's OTLP relay is on, and the agent's own OpenTelemetry SDK exports to it (protected, with the collector's credentials kept in the sidecar). */
  relay: 'agent-sidecar.io/relay',
  /** "true", or an image: zero-code instrumentation of a Node.js agent (the OpenTelemetry Operator's image and layout); turns the relay on. */
  injectNodejs: 'agent-sidecar.io/inject-nodejs',
  /** The same for a Python agent. */
  injectPython: 'agent-sidecar.io/inject-python',
  /** Written by inject: what it added, so that uninject removes exactly that. */
  status: 'agent-sidecar.io/status',
} as const;

/** kubectl's own choice of container for logs and exec; a good guess at the agent. */
export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

export const SIDECAR_CONTAINER = 'agent-sidecar';
export const CONFIG_VOLUME = 'agent-sidecar-config';
export const CONFIG_DIR = '/etc/agent-sidecar';
export const CONFIG_KEY = 'sidecar.yaml';
export const DEFAULT_CONFIGMAP = 'agent-sidecar';
/** The Secret volume with the provider keys, mounted in the sidecar only. */
export const CREDENTIAL_VOLUME = 'agent-sidecar-credentials';
export const CREDENTIAL_DIR = '/var/run/secrets/llm';
/** Where compose mounts a service's secrets. */
export const COMPOSE_SECRETS_DIR = '/run/secrets';
/** A Secret volume's file mode: its owner and group may read (the sidecar reads through the pod's fsGroup). */
export const CREDENTIAL_MODE = 0o440;
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'agent-sidecar' } as const;

/** The relay's receivers in a pod: OTLP's own ports, on loopback (the agent shares the pod's network). */
export const RELAY_PORTS = { grpc: 4317, http: 4318 } as const;

/** Port names (IANA service names: at most 15 characters). */
export const PORT_NAME = { ingress: 'sidecar-ingress', egress: 'sidecar-egress', admin: 'sidecar-admin' } as const;

/** The egress routes that the provider SDKs' base URLs point at (LLM egress). */
export const PROVIDER_BASE_PATHS = {
  ANTHROPIC_BASE_URL: '/anthropic',
  // The OpenAI SDKs expect the /v1 prefix in their base URL; Anthropic's add it themselves.
  OPENAI_BASE_URL: '/openai/v1',
} as const;

/**
 * What the sidecar container asks for: about what a proxy sidecar needs at a few hundred
 * requests per second; no CPU limit, so that bursts are not throttled.
 */
export const RESOURCES = {
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { memory: '256Mi' },
} as const;

/** The image's `node` user: runAsNonRoot needs a numeric user to verify. */
export const RUN_AS_USER = 1000;

/** The securityContext of every container inject adds: non-root, read-only root, no capabilities (the restricted Pod Security Standard). */
export const LOCKED_DOWN = {
  runAsNonRoot: true,
  runAsUser: RUN_AS_USER,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
} as const;
