export {
  configSchema,
  type McpConfig,
  type SidecarConfig,
  type SidecarConfigInput,
  checkKeySource,
  DURATION_PATTERN,
  KEY_ID_PATTERN,
  keyEntryShape,
  type ProtectionConfig,
  type RuleSetConfig,
} from './schema.ts';
export { CREDENTIAL_FILE_VARIABLES, loadConfig, redactConfigError, validateConfig, type ConfigOverrides, type LoadOptions } from './load.ts';
export { substituteEnv, type Substitution } from './env.ts';
export { parseAddress, formatAddress, type HostPort } from './address.ts';
export { configJsonSchema } from './json-schema.ts';
export { type CredentialConfig, type EgressConfig, type PriceConfig } from './egress.ts';
export { MAX_TIMER_MS } from './fields.ts';
export { A2A_METHODS, peerRoute, type AgentPeerConfig, type McpServerConfig } from './egress-peers.ts';
