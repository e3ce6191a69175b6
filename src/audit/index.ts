export { createLogAudit, createMemoryAudit, type AuditEvent, type AuditSink } from './audit.ts';
export { instrumentAudit, type AuditTelemetryOptions } from './telemetry.ts';
