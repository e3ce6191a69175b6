export { createLogAudit, createMemoryAudit, type AuditEvent, type AuditSink } from './audit.ts';
