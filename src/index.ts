// The public surface of agent-sidecar as a library.
export { createSidecar, type Sidecar, type SidecarOptions } from './sidecar.ts';
export { configJsonSchema, configSchema, loadConfig, validateConfig, type SidecarConfig, type SidecarConfigInput } from './config/index.ts';
export { catalog, isSidecarError, SidecarError, type SidecarErrorCode } from './errors/index.ts';
export type { ReadinessCheck, RequestContext, RequestObserver, RequestTelemetry, Stage } from './core/index.ts';
export { createLogger, type Logger } from './log/index.ts';
export { createEgress, createPriceBook, DEFAULT_PRICES, type Egress, type EgressOptions, type PriceBook } from './egress/index.ts';
export { version } from './version.ts';
export { createProtection, createProtector, type Protection, type Protector } from './protect/index.ts';
