import { SeverityNumber, type Attributes, type Meter, type Span } from '@opentelemetry/api';
import { METRIC, nowNs, tallyCounter, type LogEntry, type LogSink } from '../telemetry/index.ts';
import type { AuditEvent, AuditSink } from './audit.ts';

export interface AuditTelemetryOptions {
  /** Undefined when telemetry is off: the events go to `base` alone, at no cost. */
  meter: Meter | undefined;
  /** The agent_type label. */
  agentType: string;
  /** OTLP log records; undefined when telemetry.logs.otlp is off. */
  logs?: LogSink | undefined;
  /** Where a request's live server span is found by its id (the telemetry observer), for span events and trace ids. */
  spans?: { spanOf(requestId: string): Span | undefined } | undefined;
}

/**
 * Audit events also become OTel log records (sensitive operations at WARN), span events
 * on the request's server span, and the auth outcome and policy decision counters;
 * `base` (JSON lines on stdout, or undefined) keeps getting them first.
 *
 * @example
 * const audit = instrumentAudit(createLogAudit(logger), { meter: telemetry.meter, agentType, logs: telemetry.logs, spans: telemetry.observer });
 */
export function instrumentAudit(base: AuditSink | undefined, options: AuditTelemetryOptions): AuditSink {
  const { meter, agentType, logs, spans } = options;
  if (meter === undefined) return base ?? { emit() {} };
  // Counted in cells per attribute set (bounded: outcomes, methods, decisions and reasons are the sidecar's own codes).
  const authAttempts = tallyCounter(meter, METRIC.authAttempts, 'Authentication outcomes by outcome, auth_method and reason.');
  const authzDecisions = tallyCounter(meter, METRIC.authzDecisions, 'Policy decisions by decision (allowed|denied|dry_run_denied) and reason.');
  const spanOf = (requestId: string): Span | undefined => spans?.spanOf(requestId);
  return {
    emit(event) {
      base?.emit(event);
      if (event.event_type === 'authentication') {
        const outcome = event.success ? 'success' : 'failure';
        const method = event.auth_method ?? 'none';
        const reason = event.reason ?? 'ok';
        authAttempts.cell(`${outcome}|${method}|${reason}`, () => ({ agent_type: agentType, outcome, auth_method: method, reason })).n++;
        if (event.request_id !== undefined) {
          spanOf(event.request_id)?.addEvent(
            event.success ? 'authenticated' : 'authentication failed',
            event.success ? { 'auth.method': method } : { 'auth.reason': reason },
          );
        }
      } else if (event.event_type === 'authorization') {
        const decision = event.allowed ? 'allowed' : event.dry_run ? 'dry_run_denied' : 'denied';
        const reason = event.reason ?? 'ok';
        authzDecisions.cell(`${decision}|${reason}`, () => ({ agent_type: agentType, decision, reason })).n++;
        if (event.request_id !== undefined) {
          spanOf(event.request_id)?.addEvent(`authorization ${decision}`, { 'authz.permission': event.action, 'authz.reason': reason });
        }
      }
      if (logs !== undefined) {
        // In the request's trace when its span is known, so the record links to the trace.
        const requestId = 'request_id' in event ? event.request_id : undefined;
        const sc = requestId === undefined ? undefined : spanOf(requestId)?.spanContext();
        logs.push(toLogEntry(event, sc?.traceId ?? '', sc?.spanId ?? '', sc?.traceFlags ?? 0));
      }
    },
  };
}

function toLogEntry(event: AuditEvent, traceId: string, spanId: string, traceFlags: number): LogEntry {
  const attributes: Attributes = {};
  // for-in, not Object.entries: no array of pairs per event (two events per authorized request).
  const fields = event as unknown as Record<string, unknown>;
  for (const k in fields) {
    const v = fields[k];
    if (v === undefined) continue;
    attributes[k] = typeof v === 'object' && v !== null ? JSON.stringify(v) : (v as string | number | boolean);
  }
  const warn = event.event_type === 'sensitive_operation';
  return {
    timeNs: nowNs(),
    severityNumber: warn ? SeverityNumber.WARN : SeverityNumber.INFO,
    severityText: warn ? 'WARN' : 'INFO',
    eventName: `audit.${event.event_type}`,
    body: auditMessage(event),
    attributes,
    traceId,
    spanId,
    traceFlags,
  };
}

function auditMessage(event: AuditEvent): string {
  if (event.event_type === 'sensitive_operation') return `${event.operation} by ${event.user_id}`;
  if (event.event_type === 'authentication') return event.success ? 'authenticated' : `authentication failed: ${event.reason}`;
  return `${event.allowed ? 'allowed' : 'denied'} ${event.action} on ${event.resource}`;
}
