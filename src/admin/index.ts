export { createAdminServer, type AdminOptions } from './server.ts';
export { upstreamReadiness } from './upstream-check.ts';
