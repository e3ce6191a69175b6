import { CREDENTIAL_FILE_VARIABLES, loadConfig, parseAddress, validateConfig, type SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readTextCapped } from '../files/index.ts';
import { version } from '../version.ts';
import { isSecretName, parseCredentialKeys, type CredentialKeys } from './custody.ts';
import { DEFAULT_CONFIGMAP } from './names.ts';

export interface SidecarPorts {
  ingress: number;
  egress: number;
  admin: number;
}

/** Everything injection needs, resolved once from the flags and the sidecar's configuration. */
export interface InjectSettings {
  image: string;
  ports: SidecarPorts;
  /** Default for workloads without the upstream-port annotation: a port number or name. */
  upstreamPort: string | undefined;
  /** Default ConfigMap name (the config annotation overrides it per workload). */
  configMap: string;
  native: boolean;
  /** OTLP endpoint given to the agent and the sidecar, when known. */
  otelEndpoint: string | undefined;
  /** The sidecar configuration file to ship (a ConfigMap, or a bind mount in compose). */
  configFile: { path: string; text: string } | undefined;
  /** Kubernetes: the Secret whose provider keys the sidecar holds (the credential-secret annotation overrides it per workload). */
  credentialSecret: string | undefined;
  /** Which key holds which provider's key, when given (the credential-keys annotation or label overrides it); in compose, giving it turns custody on. */
  credentialKeys: CredentialKeys | undefined;
  version: string;
}

export interface InjectFlags {
  image?: string | undefined;
  configmapFrom?: string | undefined;
  configmapName?: string | undefined;
  upstreamPort?: string | undefined;
  ingressPort?: string | undefined;
  egressPort?: string | undefined;
  adminPort?: string | undefined;
  otelEndpoint?: string | undefined;
  nativeSidecar?: boolean | undefined;
  credentialSecret?: string | undefined;
  credentialKeys?: string | undefined;
}

export const defaultImage = (v = version): string => `agent-sidecar:${v}`;

const usage = (message: string) => new SidecarError('SIDECAR_USAGE_INVALID', { message });

/**
 * Resolves the flags. The sidecar's ports come from its configuration (the file given with
 * --configmap-from, validated by the loader `run` uses, or else the schema's defaults),
 * then from the port flags.
 */
export function resolveSettings(flags: InjectFlags, env: NodeJS.ProcessEnv = process.env): InjectSettings {
  const file = flags.configmapFrom;
  // The file's own values count, not this shell's SIDECAR_* overrides: in the pod the
  // container's environment sets those.
  const config: SidecarConfig = file === undefined ? validateConfig({}) : loadConfig({ file, env: withoutOverrides(env) });
  const ports: SidecarPorts = {
    ingress: portFlag('--ingress-port', flags.ingressPort) ?? configPort('listen.address', config.listen.address),
    egress: portFlag('--egress-port', flags.egressPort) ?? configPort('egress.address', config.egress.address),
    admin: portFlag('--admin-port', flags.adminPort) ?? configPort('admin.address', config.admin.address),
  };
  const seen = new Map<number, string>();
  for (const [role, port] of Object.entries(ports)) {
    const other = seen.get(port);
    if (other !== undefined) throw usage(`the sidecar's ${other} and ${role} ports are both ${port}; give one another port with --${role}-port`);
    seen.set(port, role);
  }
  const endpoint = flags.otelEndpoint ?? config.telemetry.endpoint;
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint)) throw usage(`--otel-endpoint ${endpoint}: expected an http:// or https:// URL`);
  if (flags.upstreamPort !== undefined && !/^([1-9]\d{0,4}|[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?)$/.test(flags.upstreamPort)) {
    throw usage(`--upstream-port ${flags.upstreamPort}: expected a port number or a container port name`);
  }
  if (flags.configmapName !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(flags.configmapName)) {
    throw usage(`--configmap-name ${flags.configmapName}: expected a Kubernetes name (lowercase letters, digits, - and .)`);
  }
  if (flags.credentialSecret !== undefined && !isSecretName(flags.credentialSecret)) {
    throw usage(`--credential-secret ${flags.credentialSecret}: expected a Secret name (lowercase letters, digits, - and .)`);
  }
  const credentialKeys =
    flags.credentialKeys === undefined
      ? undefined
      : parseCredentialKeys(flags.credentialKeys, (problem) => {
          throw usage(`--credential-keys ${flags.credentialKeys}: ${problem}`);
        });
  if (flags.image !== undefined && !/^\S+$/.test(flags.image))
    throw usage(`--image "${flags.image}": expected an image reference such as registry.example.com/agent-sidecar:${version}`);
  return {
    image: flags.image ?? defaultImage(),
    ports,
    upstreamPort: flags.upstreamPort,
    configMap: flags.configmapName ?? DEFAULT_CONFIGMAP,
    native: flags.nativeSidecar === true,
    otelEndpoint: endpoint,
    // loadConfig above has read it once already, within the same cap.
    configFile: file === undefined ? undefined : { path: file, text: readConfigText(file) },
    credentialSecret: flags.credentialSecret,
    credentialKeys,
    version,
  };
}

function readConfigText(file: string): string {
  try {
    return readTextCapped(file, FILE_LIMITS.config);
  } catch (cause) {
    throw new SidecarError('SIDECAR_CONFIG_UNREADABLE', { message: `cannot read ${file}: ${(cause as Error).message}`, cause });
  }
}

function withoutOverrides(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { SIDECAR_LISTEN: _l, SIDECAR_UPSTREAM: _u, SIDECAR_ADMIN: _a, SIDECAR_EGRESS: _e, SIDECAR_LOG_LEVEL: _g, ...rest } = env;
  for (const name of Object.values(CREDENTIAL_FILE_VARIABLES)) delete rest[name];
  return rest;
}

function portFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) throw usage(`${flag} ${value}: expected a port number from 1 to 65535`);
  return port;
}

function configPort(key: string, address: string): number {
  const { port } = parseAddress(address);
  if (port === 0) throw usage(`${key} ${address}: a container needs a fixed port, not 0`);
  return port;
}
