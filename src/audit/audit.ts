import { componentLogger, type Logger } from '../log/index.ts';

/**
 * Audit events, with the field names of the reference design so its Elasticsearch
 * template applies: event_type, user_id, ip_address, user_agent, action, resource, allowed.
 */
export type AuditEvent =
  | {
      event_type: 'authentication';
      success: boolean;
      /** The error code when it failed. */
      reason?: string | undefined;
      user_id?: string | undefined;
      auth_method?: string | undefined;
      ip_address: string;
      user_agent?: string | undefined;
      request_id?: string | undefined;
    }
  | {
      event_type: 'authorization';
      user_id?: string | undefined;
      /** The permission the route requires. */
      action: string;
      /** Method and normalized path. */
      resource: string;
      route?: string | undefined;
      /** MCP routes: the JSON-RPC method, and the tool or prompt name or resource URI it names. */
      mcp_method?: string | undefined;
      mcp_name?: string | undefined;
      /** Egress calls to the agent's MCP servers and A2A peers: the peer's name. */
      egress_peer?: string | undefined;
      /** A2A: the JSON-RPC method as sent (ingress routes and egress peers), and the skill a message asks for (ingress). */
      a2a_method?: string | undefined;
      a2a_skill?: string | undefined;
      allowed: boolean;
      dry_run: boolean;
      reason?: string | undefined;
      ip_address?: string | undefined;
      request_id?: string | undefined;
    }
  | {
      event_type: 'sensitive_operation';
      user_id: string;
      operation: string;
      details: Record<string, unknown>;
    };

export interface AuditSink {
  emit(event: AuditEvent): void;
}

/** JSON lines through the process logger; sensitive operations at warning level. */
export function createLogAudit(logger: Logger): AuditSink {
  const audit = componentLogger(logger, 'agent-sidecar.audit', { tags: ['audit'] });
  return {
    emit(event) {
      // The message is built only for a level that is written.
      if (!audit.isLevelEnabled(event.event_type === 'sensitive_operation' ? 'warn' : 'info')) return;
      if (event.event_type === 'sensitive_operation') audit.warn(event, `${event.operation} by ${event.user_id}`);
      else if (event.event_type === 'authentication') audit.info(event, event.success ? 'authenticated' : `authentication failed: ${event.reason}`);
      else
        audit.info(
          event,
          `${event.allowed ? 'allowed' : 'denied'} ${event.action} on ${event.resource}${event.dry_run && !event.allowed ? ' (dry run: let through)' : ''}`,
        );
    },
  };
}

/** For tests and embedders: keeps events in memory. */
export function createMemoryAudit(): AuditSink & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return { events, emit: (e) => void events.push(e) };
}
