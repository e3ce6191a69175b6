export { Admission, type AdmissionOptions } from './admission.ts';
export { createCircuitBreaker, type CircuitBreaker, type CircuitBreakerOptions, type CircuitState } from './breaker.ts';
export { createForwarder, createUpstreamPool, type Forwarder, type ForwarderOptions } from './forward.ts';
export { clientResponseHeaders, connectionTokens, HOP_BY_HOP } from './headers.ts';
export { ClientGone, Relay } from './relay.ts';
export { createRequestHeaderBuilder, type RequestHeaderBuilder } from './request-headers.ts';
export { createUpgrader, type Upgrader } from './upgrade.ts';
export { isConnectionFailure, relayedReason, upstreamError, upstreamStatusKind } from './upstream-errors.ts';
