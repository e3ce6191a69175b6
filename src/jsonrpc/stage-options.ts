import type { AuditSink } from '../audit/index.ts';
import type { Policy } from '../policy/index.ts';
import type { RpcTelemetry } from './telemetry.ts';

/** What the MCP and A2A stages both take. */
export interface RpcStageOptions {
  policy: () => Policy;
  audit: AuditSink;
  /** policy.dryRun: every would-be refusal is let through and audited. */
  dryRun: boolean;
  /** mcp.maxMessageBytes: one message, either way (it serves both protocols). */
  maxMessageBytes: number;
  /** mcp.maxDepth: nesting of objects and arrays in a client's message. */
  maxDepth: number;
  /** Spans and metrics per message; default: none. */
  telemetry?: RpcTelemetry | undefined;
}
