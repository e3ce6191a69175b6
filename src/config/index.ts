export { configSchema, type McpConfig, type SidecarConfig, type SidecarConfigInput } from './schema.ts';
export { loadConfig, redactConfigError, validateConfig, type ConfigOverrides, type LoadOptions } from './load.ts';
export { substituteEnv, type Substitution } from './env.ts';
export { parseAddress, formatAddress, type HostPort } from './address.ts';
export { configJsonSchema } from './json-schema.ts';
