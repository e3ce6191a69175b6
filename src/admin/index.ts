export { createAdminServer, type AdminOptions, type ReadinessCheck } from './server.ts';
export { upstreamReadiness } from './upstream-check.ts';
