import { SpanKind, SpanStatusCode, type Attributes, type Counter, type Histogram, type Meter, type Tracer } from '@opentelemetry/api';
import type { Principal } from '../auth/index.ts';
import type { RequestContext } from '../core/index.ts';
import type { SidecarErrorCode } from '../errors/index.ts';
import { MCP_BUCKETS, METRIC, RPC_ATTR } from '../telemetry/index.ts';
import type { RpcId } from './message.ts';

/** One JSON-RPC request or notification as the MCP or A2A stage read it: names only, never arguments. */
export interface RpcCall {
  readonly protocol: 'mcp' | 'a2a';
  readonly method: string;
  readonly id: RpcId | undefined;
  /** MCP-Protocol-Version or A2A-Version as the request speaks it. */
  readonly version: string | undefined;
  /** Mcp-Session-Id, for the revisions that have sessions. */
  readonly session?: string | undefined;
  /** The tool a tools/call names. */
  readonly tool?: string | undefined;
  /** The A2A task the request addresses. */
  readonly task?: string | undefined;
}

/** What became of the call: passed, refused with a JSON-RPC error code, or would have been (dry run). */
export type RpcOutcome =
  { readonly decision: 'allowed' } | { readonly decision: 'refused' | 'dry_run_refused'; readonly rpcCode: number; readonly code: SidecarErrorCode };

export interface RpcTelemetry {
  /** Records the call: a span and, for MCP, the operation duration, both ending with the response. */
  observe(ctx: RequestContext, call: RpcCall, outcome: RpcOutcome, roles: ReadonlyMap<string, unknown>): void;
}

/** Telemetry off: nothing is recorded, at the cost of one call. */
export const NO_RPC_TELEMETRY: RpcTelemetry = Object.freeze({ observe() {} });

export interface RpcTelemetryOptions {
  meter: Meter | undefined;
  tracer: Tracer | undefined;
  agentType: string;
}

/** Labels a client chooses (tool names) stay bounded: the first `cap` seen keep theirs, later ones share _OTHER. */
function boundedLabel(cap: number): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= cap) return '_OTHER';
    seen.add(value);
    return value;
  };
}

// MCP methods of the revisions the sidecar reads; any other is _OTHER on metrics (spans keep it).
const MCP_METHODS = new Set([
  'initialize',
  'ping',
  'server/discover',
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'completion/complete',
  'logging/setLevel',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/roots/list_changed',
  'tasks/get',
  'tasks/list',
  'tasks/result',
  'tasks/cancel',
]);
const MAX_SESSION_ID = 128;

/** The role label: the caller's first role the policy defines (bounded by the policy), else other or none. */
export function roleLabel(principal: Principal | undefined, roles: ReadonlyMap<string, unknown>): string {
  if (principal === undefined || principal.roles.length === 0) return 'none';
  for (const r of principal.roles) if (roles.has(r)) return r;
  return 'other';
}

/**
 * Spans and metrics of MCP and A2A messages on ingress, per the MCP and A2A semantic
 * conventions: a SERVER span per message (the `mcp.server` operation), child of the request's
 * HTTP SERVER span, named `{method} {tool}`; mcp.server.operation.duration; and
 * agent_tool_calls_total by tool, decision and role. Arguments and results are never recorded.
 * Both undefined (telemetry off): {@link NO_RPC_TELEMETRY}.
 *
 * @example
 * const rpcTelemetry = createRpcTelemetry({ meter: telemetry.meter, tracer: telemetry.tracer, agentType });
 */
export function createRpcTelemetry(o: RpcTelemetryOptions): RpcTelemetry {
  const { meter, tracer, agentType } = o;
  if (meter === undefined && tracer === undefined) return NO_RPC_TELEMETRY;
  const duration: Histogram | undefined = meter?.createHistogram(METRIC.mcpServerDuration, {
    unit: 's',
    description: 'Duration of MCP messages on ingress, from the message read to the response sent, by mcp.method.name and gen_ai.tool.name.',
    advice: { explicitBucketBoundaries: MCP_BUCKETS },
  });
  const toolCalls: Counter | undefined = meter?.createCounter(METRIC.toolCalls, {
    description: 'MCP tools/call messages by tool, decision (allowed|refused|dry_run_refused) and role.',
  });
  const toolLabel = boundedLabel(256);

  function spanAttributes(call: RpcCall, outcome: RpcOutcome): Attributes {
    const a: Attributes = { [RPC_ATTR.requestId]: call.id === undefined ? undefined : String(call.id) };
    if (call.protocol === 'mcp') {
      a[RPC_ATTR.mcpMethod] = call.method;
      a[RPC_ATTR.mcpVersion] = call.version;
      a[RPC_ATTR.mcpSession] = call.session?.slice(0, MAX_SESSION_ID);
      if (call.tool !== undefined) {
        a[RPC_ATTR.tool] = call.tool;
        a[RPC_ATTR.operation] = 'execute_tool';
      }
    } else {
      a[RPC_ATTR.a2aMethod] = call.method;
      a[RPC_ATTR.a2aVersion] = call.version;
      a[RPC_ATTR.a2aTask] = call.task;
    }
    if (outcome.decision === 'refused') {
      a[RPC_ATTR.statusCode] = String(outcome.rpcCode);
      a[RPC_ATTR.errorType] = String(outcome.rpcCode);
    }
    return a;
  }

  return {
    observe(ctx, call, outcome, roles) {
      const started = performance.now();
      const refused = outcome.decision === 'refused';
      const name = call.tool === undefined ? call.method : `${call.method} ${call.tool}`;
      const span = tracer?.startSpan(name, { kind: SpanKind.SERVER, attributes: spanAttributes(call, outcome) }, ctx.telemetry?.context);
      if (span !== undefined && refused) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.code });
      const tool = call.tool === undefined ? undefined : toolLabel(call.tool);
      if (tool !== undefined && call.method === 'tools/call') {
        toolCalls?.add(1, { agent_type: agentType, tool, decision: outcome.decision, role: roleLabel(ctx.principal, roles) });
      }
      const end = () => {
        const res = ctx.res;
        // The client went away before the answer was sent: the operation did not complete.
        const aborted = res !== undefined && !res.writableFinished;
        if (aborted && span !== undefined && !refused) span.setStatus({ code: SpanStatusCode.ERROR, message: 'response not completed' });
        span?.end();
        if (duration !== undefined && call.protocol === 'mcp') {
          const attrs: Attributes = {
            [RPC_ATTR.mcpMethod]: MCP_METHODS.has(call.method) ? call.method : '_OTHER',
            [RPC_ATTR.mcpVersion]: call.version,
          };
          if (tool !== undefined) attrs[RPC_ATTR.tool] = tool;
          if (refused) attrs[RPC_ATTR.errorType] = attrs[RPC_ATTR.statusCode] = String(outcome.rpcCode);
          else if (aborted) attrs[RPC_ATTR.errorType] = 'aborted';
          duration.record((performance.now() - started) / 1000, attrs);
        }
      };
      if (ctx.res === undefined || ctx.res.closed) end();
      else ctx.res.once('close', end);
    },
  };
}
