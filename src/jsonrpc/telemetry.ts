import type { IncomingHttpHeaders } from 'node:http';
import { SpanKind, SpanStatusCode, type Attributes, type Counter, type Histogram, type Meter, type Span, type Tracer } from '@opentelemetry/api';
import type { Principal } from '../auth/index.ts';
import type { RequestContext } from '../core/index.ts';
import type { ResponseBodyHook } from '../core/index.ts';
import type { SidecarErrorCode } from '../errors/index.ts';
import { callerContext, MCP_BUCKETS, METRIC, RPC_ATTR, traceHeadersOf } from '../telemetry/index.ts';
import { readAnswers, type RpcAnswer } from './answers.ts';
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
  /** A tools/call's arguments, recorded only when capture asks for them (through data protection). */
  readonly arguments?: unknown;
}

/** What became of the call: passed, refused with a JSON-RPC error code, or would have been (dry run). */
export type RpcOutcome =
  { readonly decision: 'allowed' } | { readonly decision: 'refused' | 'dry_run_refused'; readonly rpcCode: number; readonly code: SidecarErrorCode };

export interface RpcTelemetry {
  /**
   * Records the call: a span and, for MCP, the operation duration, both ending with the
   * response. For a request that goes on to the server, what comes back is the hook that reads
   * its answer (the JSON-RPC error code, a tool's isError, an A2A task's state, the result when
   * captured) without changing it; undefined when there is nothing to read.
   */
  observe(ctx: RequestContext, call: RpcCall, outcome: RpcOutcome, roles: ReadonlyMap<string, unknown>): ResponseBodyHook | undefined;
}

/** Telemetry off: nothing is recorded, at the cost of one call. */
export const NO_RPC_TELEMETRY: RpcTelemetry = Object.freeze({ observe: () => undefined });

/** mcp.capture: a tools/call's arguments and result on its span, each protected, then cut. */
export interface ToolCapture {
  readonly arguments: boolean;
  readonly results: boolean;
  /** The value as JSON, through data protection, cut to the capture's length. */
  text(value: unknown): string;
}

export interface RpcTelemetryOptions {
  meter: Meter | undefined;
  tracer: Tracer | undefined;
  agentType: string;
  /** mcp.maxMessageBytes: the largest answer (or SSE event) read for its status; a longer one passes unread. */
  maxAnswerBytes: number;
  /** Tool arguments and results on spans; default: never. */
  capture?: ToolCapture | undefined;
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

/** The span's attributes, either side: names and codes; arguments only when captured. */
function spanAttributes(call: RpcCall, outcome: RpcOutcome, capture: ToolCapture | undefined): Attributes {
  const a: Attributes = { [RPC_ATTR.requestId]: call.id === undefined ? undefined : String(call.id) };
  if (call.protocol === 'mcp') {
    a[RPC_ATTR.mcpMethod] = call.method;
    a[RPC_ATTR.mcpVersion] = call.version;
    a[RPC_ATTR.mcpSession] = call.session?.slice(0, MAX_SESSION_ID);
    if (call.tool !== undefined) {
      a[RPC_ATTR.tool] = call.tool;
      a[RPC_ATTR.operation] = 'execute_tool';
      if (capture?.arguments && call.arguments !== undefined) a[RPC_ATTR.toolArguments] = capture.text(call.arguments);
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

/** Whether an answer is worth reading: the request has one coming, and a recording span or an MCP duration takes what it says. */
function readsAnswer(call: RpcCall, span: Span | undefined, duration: Histogram | undefined): call is RpcCall & { id: RpcId } {
  return call.id !== undefined && (span?.isRecording() === true || (duration !== undefined && call.protocol === 'mcp'));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The task an A2A answer is about: a 0.3 Task or status update (kind task, status-update), a
 * 1.0 Task, SendMessageResponse ({task}) or stream response ({task}, {statusUpdate}); a
 * message answer names at most its task.
 */
function taskOf(result: unknown): { id?: string | undefined; state?: string | undefined } {
  if (!isObject(result)) return {};
  const inner = isObject(result.task) ? result.task : isObject(result.statusUpdate) ? result.statusUpdate : result;
  const status = inner.status;
  const state = isObject(status) && typeof status.state === 'string' ? status.state : undefined;
  const id = typeof inner.taskId === 'string' ? inner.taskId : state !== undefined && typeof inner.id === 'string' ? inner.id : undefined;
  return { id, state };
}

function fail(span: Span | undefined, errorType: string): string {
  span?.setAttribute(RPC_ATTR.errorType, errorType);
  span?.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
  return errorType;
}

/**
 * What the server's answer adds to the span, either side: a JSON-RPC error's code
 * (rpc.response.status_code and error.type), a tool result with isError (error.type
 * tool_error), an HTTP error status (error.type), an A2A task's id and state, and the tool's
 * result when captured. Returns the error.type the duration takes, if any.
 */
function recordAnswer(span: Span | undefined, call: RpcCall, answer: RpcAnswer, capture: ToolCapture | undefined): string | undefined {
  switch (answer.kind) {
    case 'http':
      return fail(span, String(answer.status));
    case 'error': {
      const code = answer.code === undefined ? '_OTHER' : String(answer.code);
      span?.setAttribute(RPC_ATTR.statusCode, code);
      return fail(span, code);
    }
    case 'result': {
      const result = answer.result;
      if (call.protocol === 'a2a') {
        const task = taskOf(result);
        if (task.id !== undefined) span?.setAttribute(RPC_ATTR.a2aTask, task.id);
        if (task.state !== undefined) span?.setAttribute(RPC_ATTR.a2aTaskState, task.state);
        return undefined;
      }
      if (call.tool === undefined) return undefined;
      if (capture?.results && span?.isRecording() === true) span.setAttribute(RPC_ATTR.toolResult, capture.text(result));
      return isObject(result) && result.isError === true ? fail(span, 'tool_error') : undefined;
    }
  }
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
  const { meter, tracer, agentType, maxAnswerBytes, capture } = o;
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
      const span = tracer?.startSpan(spanName(call), { kind: SpanKind.SERVER, attributes: spanAttributes(call, outcome, capture) }, ctx.telemetry?.context);
      if (span !== undefined && refused) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.code });
      const tool = call.tool === undefined ? undefined : toolLabel(call.tool);
      if (tool !== undefined && call.method === 'tools/call') {
        toolCalls?.add(1, { agent_type: agentType, tool, decision: outcome.decision, role: roleLabel(ctx.principal, roles) });
      }
      let failure: string | undefined;
      const end = () => {
        const res = ctx.res;
        // The client went away before the answer was sent: the operation did not complete.
        const aborted = res !== undefined && !res.writableFinished;
        if (aborted && span !== undefined && !refused) span.setStatus({ code: SpanStatusCode.ERROR, message: 'response not completed' });
        span?.end();
        if (duration !== undefined && call.protocol === 'mcp') {
          duration.record((performance.now() - started) / 1000, durationAttributes(call, outcome, tool, aborted ? 'aborted' : failure));
        }
      };
      if (ctx.res === undefined || ctx.res.closed) end();
      else ctx.res.once('close', end);
      // What the server answers is read only for a request it will answer, and only when something records it.
      if (refused || !readsAnswer(call, span, duration)) return undefined;
      return readAnswers(call.id, maxAnswerBytes, (answer) => {
        failure = recordAnswer(span, call, answer, capture) ?? failure;
      });
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
  /** Reads the server's answer for the span and duration (see RpcTelemetry.observe); undefined when nothing records it. */
  readonly answers: ResponseBodyHook | undefined;
  /** The call is over: `failure` is its error.type (an HTTP status, a transport error, aborted); undefined, it succeeded. Later calls do nothing. */
  end(failure?: string): void;
}

export interface RpcClientTelemetry {
  /** A call the sidecar sends on: its span starts, continuing the traceparent of the caller's headers, if any. */
  start(call: RpcCall, peer: RpcPeer, headers: IncomingHttpHeaders): RpcClientCall;
  /** A call the sidecar refused: its span, with the JSON-RPC code, ends at once. */
  refused(call: RpcCall, peer: RpcPeer, headers: IncomingHttpHeaders, refusal: RpcClientRefusal): void;
}

const NO_CLIENT_CALL: RpcClientCall = Object.freeze({ traceHeaders: [], answers: undefined, end() {} });
/** Telemetry off: nothing is recorded, and the caller's trace headers go on as they came. */
export const NO_RPC_CLIENT_TELEMETRY: RpcClientTelemetry = Object.freeze({ start: () => NO_CLIENT_CALL, refused() {} });

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
  const { meter, tracer, agentType, maxAnswerBytes, capture } = o;
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
      const parent = callerContext(headers);
      const attributes = spanAttributes(call, outcome, capture);
      attributes[RPC_ATTR.serverAddress] = peer.address;
      attributes[RPC_ATTR.serverPort] = peer.port;
      span = tracer.startSpan(spanName(call), { kind: SpanKind.CLIENT, attributes }, parent);
      if (outcome.decision !== 'allowed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.code });
    }
    let ended = false;
    // What the answer said (a JSON-RPC error, a tool error), unless the relay names a failure of its own.
    let answered: string | undefined;
    const end = (relayFailure?: string) => {
      if (ended) return;
      ended = true;
      const failure = relayFailure ?? answered;
      if (span !== undefined) {
        if (relayFailure !== undefined) fail(span, relayFailure);
        span.end();
      }
      if (duration !== undefined && call.protocol === 'mcp') {
        const attrs = durationAttributes(call, outcome, tool, failure);
        attrs[RPC_ATTR.serverAddress] = peer.address;
        attrs[RPC_ATTR.serverPort] = peer.port;
        duration.record((performance.now() - started) / 1000, attrs);
      }
    };
    const answers =
      outcome.decision !== 'allowed' || !readsAnswer(call, span, duration)
        ? undefined
        : readAnswers(call.id, maxAnswerBytes, (answer) => {
            if (!ended) answered = recordAnswer(span, call, answer, capture) ?? answered;
          });
    return { span, end, answers };
  }

  return {
    start(call, peer, headers) {
      const { span, end, answers } = begin(call, peer, headers, { decision: 'allowed' });
      return { traceHeaders: traceHeadersOf(span), end, answers };
    },
    refused(call, peer, headers, refusal) {
      begin(call, peer, headers, { decision: 'refused', ...refusal }).end();
    },
  };
}
