import type { IncomingHttpHeaders } from 'node:http';
import {
  defaultTextMapGetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  type Span,
  type TextMapSetter,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
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

/** `{method} {tool}`, or the method alone: the conventions' span name. */
function spanName(call: RpcCall): string {
  return call.tool === undefined ? call.method : `${call.method} ${call.tool}`;
}

/** The span's attributes, either side: names and codes, never arguments or results. */
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

/** mcp.{server,client}.operation.duration's attributes: bounded (method _OTHER, tool as labelled). */
function durationAttributes(call: RpcCall, outcome: RpcOutcome, tool: string | undefined, failure: string | undefined): Attributes {
  const attrs: Attributes = {
    [RPC_ATTR.mcpMethod]: MCP_METHODS.has(call.method) ? call.method : '_OTHER',
    [RPC_ATTR.mcpVersion]: call.version,
  };
  if (tool !== undefined) attrs[RPC_ATTR.tool] = tool;
  if (outcome.decision === 'refused') attrs[RPC_ATTR.errorType] = attrs[RPC_ATTR.statusCode] = String(outcome.rpcCode);
  else if (failure !== undefined) attrs[RPC_ATTR.errorType] = failure;
  return attrs;
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

  return {
    observe(ctx, call, outcome, roles) {
      const started = performance.now();
      const refused = outcome.decision === 'refused';
      const span = tracer?.startSpan(spanName(call), { kind: SpanKind.SERVER, attributes: spanAttributes(call, outcome) }, ctx.telemetry?.context);
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
          duration.record((performance.now() - started) / 1000, durationAttributes(call, outcome, tool, aborted ? 'aborted' : undefined));
        }
      };
      if (ctx.res === undefined || ctx.res.closed) end();
      else ctx.res.once('close', end);
    },
  };
}

/** The MCP server or A2A peer an outbound call goes to. */
export interface RpcPeer {
  /** Its configuration name (egress.mcpServers.<name>), the server label of the tool-call count. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** A refusal of the sidecar's own, answered before the call was sent. */
export interface RpcClientRefusal {
  readonly rpcCode: number;
  readonly code: SidecarErrorCode;
}

/** One outbound call whose CLIENT span has started. */
export interface RpcClientCall {
  /** traceparent (and tracestate) that name the CLIENT span, as [name, value, …] for the peer; empty when nothing is traced. */
  readonly traceHeaders: readonly string[];
  /** The call is over: `failure` is its error.type (an HTTP status, a transport error, aborted); undefined, it succeeded. Later calls do nothing. */
  end(failure?: string): void;
}

export interface RpcClientTelemetry {
  /** A call the sidecar sends on: its span starts, continuing the traceparent of the caller's headers, if any. */
  start(call: RpcCall, peer: RpcPeer, headers: IncomingHttpHeaders): RpcClientCall;
  /** A call the sidecar refused: its span, with the JSON-RPC code, ends at once. */
  refused(call: RpcCall, peer: RpcPeer, headers: IncomingHttpHeaders, refusal: RpcClientRefusal): void;
}

const NO_CLIENT_CALL: RpcClientCall = Object.freeze({ traceHeaders: [], end() {} });
/** Telemetry off: nothing is recorded, and the caller's trace headers go on as they came. */
export const NO_RPC_CLIENT_TELEMETRY: RpcClientTelemetry = Object.freeze({ start: () => NO_CLIENT_CALL, refused() {} });

const propagator = new W3CTraceContextPropagator();
const pairSetter: TextMapSetter<string[]> = {
  set(carrier, key, value) {
    carrier.push(key, value);
  },
};

/**
 * Spans and metrics of the calls the agent makes to its MCP servers and A2A peers (egress),
 * per the same conventions as {@link createRpcTelemetry}: a CLIENT span per JSON-RPC request or
 * notification (the `mcp.client` operation), named `{method} {tool}`, a child of the agent's
 * traceparent when it sent one, with the peer's server.address and server.port; the span's own
 * traceparent goes to the peer. mcp.client.operation.duration, and agent_egress_tool_calls_total
 * by server, tool and decision. Arguments and results are never recorded. Both undefined
 * (telemetry off): {@link NO_RPC_CLIENT_TELEMETRY}.
 */
export function createRpcClientTelemetry(o: RpcTelemetryOptions): RpcClientTelemetry {
  const { meter, tracer, agentType } = o;
  if (meter === undefined && tracer === undefined) return NO_RPC_CLIENT_TELEMETRY;
  const duration: Histogram | undefined = meter?.createHistogram(METRIC.mcpClientDuration, {
    unit: 's',
    description: "Duration of the agent's MCP messages on egress, from the message read to the answer relayed, by mcp.method.name and gen_ai.tool.name.",
    advice: { explicitBucketBoundaries: MCP_BUCKETS },
  });
  const toolCalls: Counter | undefined = meter?.createCounter(METRIC.egressToolCalls, {
    description: "The agent's MCP tools/call messages on egress by server, tool and decision (allowed|refused).",
  });
  const toolLabel = boundedLabel(256);

  function begin(call: RpcCall, peer: RpcPeer, headers: IncomingHttpHeaders, outcome: RpcOutcome) {
    const started = performance.now();
    const tool = call.tool === undefined ? undefined : toolLabel(call.tool);
    if (tool !== undefined && call.method === 'tools/call') toolCalls?.add(1, { agent_type: agentType, server: peer.name, tool, decision: outcome.decision });
    let span: Span | undefined;
    if (tracer !== undefined) {
      const parent = headers.traceparent === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
      const attributes = spanAttributes(call, outcome);
      attributes[RPC_ATTR.serverAddress] = peer.address;
      attributes[RPC_ATTR.serverPort] = peer.port;
      span = tracer.startSpan(spanName(call), { kind: SpanKind.CLIENT, attributes }, parent);
      if (outcome.decision !== 'allowed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.code });
    }
    let ended = false;
    const end = (failure?: string) => {
      if (ended) return;
      ended = true;
      if (span !== undefined) {
        if (failure !== undefined) {
          span.setAttribute(RPC_ATTR.errorType, failure);
          span.setStatus({ code: SpanStatusCode.ERROR, message: failure });
        }
        span.end();
      }
      if (duration !== undefined && call.protocol === 'mcp') {
        const attrs = durationAttributes(call, outcome, tool, failure);
        attrs[RPC_ATTR.serverAddress] = peer.address;
        attrs[RPC_ATTR.serverPort] = peer.port;
        duration.record((performance.now() - started) / 1000, attrs);
      }
    };
    return { span, end };
  }

  return {
    start(call, peer, headers) {
      const { span, end } = begin(call, peer, headers, { decision: 'allowed' });
      const traceHeaders: string[] = [];
      if (span !== undefined) propagator.inject(trace.setSpan(ROOT_CONTEXT, span), traceHeaders, pairSetter);
      return { traceHeaders, end };
    },
    refused(call, peer, headers, refusal) {
      begin(call, peer, headers, { decision: 'refused', ...refusal }).end();
    },
  };
}
