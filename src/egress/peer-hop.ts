import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { AuditSink } from '../audit/index.ts';
import type { ResponseBodyHook } from '../core/index.ts';
import { isSidecarError, type SidecarErrorCode } from '../errors/index.ts';
import { a2aCallOf, a2aErrorDataOf } from '../a2a/index.ts';
import {
  isProblem,
  NO_RPC_CLIENT_TELEMETRY,
  parseMessage,
  refusalAnswer,
  type RpcCall,
  type RpcClientTelemetry,
  type RpcRefusal,
  type RpcMessage,
} from '../jsonrpc/index.ts';
import { checkStateless, createListFilter, mcpCallOf, revisionOf, STATELESS, type Keep } from '../mcp/index.ts';
import { dispatchToPeer } from './peer-call.ts';
import type { Peer } from './peers.ts';
import { readBody } from './request.ts';

export interface PeerHopOptions {
  dispatcher: Dispatcher;
  audit: AuditSink;
  /** mcp.maxMessageBytes: one MCP message, either way (a POST, a tools/list answer). */
  maxMessageBytes: number;
  /** egress.maxRequestBytes: one A2A message, which may carry files. */
  maxRequestBytes: number;
  /** mcp.maxDepth: nesting of objects and arrays in a message. */
  maxDepth: number;
  /** A CLIENT span per JSON-RPC call, MCP durations and tool-call counts; default: none. */
  telemetry?: RpcClientTelemetry | undefined;
}

export interface PeerRequest {
  peer: Peer;
  path: string;
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  draining: boolean;
}

type Call = Extract<RpcMessage, { method: string }>;

/**
 * The hop to an MCP server or A2A peer of the agent. A POSTed JSON-RPC message is read
 * (bounded) and parsed once, judged against the peer's allowlist (MCP: the tool of a
 * tools/call; A2A: the method) and audited; a refusal is a JSON-RPC error answered here, and
 * what passes is forwarded as the very bytes that were judged. MCP tools/list answers (and a
 * GET stream's replays) are filtered to the allowlist. Anything else, the A2A agent card
 * included, is relayed as it is. Each JSON-RPC request or notification, sent or refused, gets
 * a CLIENT span (src/jsonrpc/telemetry.ts), whose traceparent the peer receives.
 */
export function createPeerHop(o: PeerHopOptions): (r: PeerRequest) => Promise<void> {
  const { dispatcher, audit, maxMessageBytes, maxDepth } = o;
  const telemetry = o.telemetry ?? NO_RPC_CLIENT_TELEMETRY;
  const keeps = new WeakMap<Peer, Keep>();
  const keep = (peer: Peer): Keep => {
    let k = keeps.get(peer);
    if (k === undefined) keeps.set(peer, (k = (kind, name) => kind !== 'tools' || peer.allows!(name)));
    return k;
  };

  /** `method`: the refused call's, undefined when the message was not readable. */
  function refuse(r: PeerRequest, refusal: RpcRefusal, method?: string): void {
    // An A2A peer's caller gets error.data in the shape of its revision (1.0: google.rpc error details).
    const errorData = r.peer.kind === 'a2a' ? a2aErrorDataOf(r.req.headers, method) : undefined;
    const answer = refusalAnswer({ ...refusal, errorData }, r.requestId);
    // A body left unread leaves the connection unusable.
    if (!r.req.complete) answer.headers.connection = 'close';
    r.res.writeHead(answer.status, answer.headers).end(answer.body);
  }

  function record(r: PeerRequest, msg: Call, allowed: boolean, code: SidecarErrorCode | undefined, tool?: string): void {
    const { peer } = r;
    audit.emit({
      event_type: 'authorization',
      action: peer.allowlist,
      resource: `POST ${peer.route} ${msg.method}${tool === undefined ? '' : ` ${tool}`}`,
      route: peer.route,
      egress_peer: peer.name,
      ...(peer.kind === 'mcp' ? { mcp_method: msg.method, mcp_name: tool } : { a2a_method: msg.method }),
      allowed,
      dry_run: false,
      reason: code,
      ip_address: r.req.socket.remoteAddress,
      request_id: r.requestId,
    });
  }

  /** MCP: only tools/call is judged (every one audited); tools/list gets its answer filtered. */
  function judgeMcp(r: PeerRequest, msg: Call): RpcRefusal | ResponseBodyHook | undefined {
    const id = msg.kind === 'request' ? msg.id : undefined;
    if (msg.method === 'tools/list') return id === undefined ? undefined : createListFilter('tools/list', id, keep(r.peer), maxMessageBytes);
    if (msg.method !== 'tools/call') return undefined;
    const tool = msg.params?.name;
    if (typeof tool !== 'string') {
      record(r, msg, false, 'SIDECAR_MCP_INVALID_REQUEST');
      return { code: 'SIDECAR_MCP_INVALID_REQUEST', rpcCode: -32602, id };
    }
    const allowed = r.peer.allows!(tool);
    record(r, msg, allowed, allowed ? undefined : 'SIDECAR_TOOL_NOT_ALLOWED', tool);
    // Invalid params, as a server answers a tool it does not have: a refused tool looks like an absent one.
    return allowed ? undefined : { code: 'SIDECAR_TOOL_NOT_ALLOWED', rpcCode: -32602, id, data: { tool, server: r.peer.name } };
  }

  /** A2A: every call is audited; the method is judged when the peer has an allowlist. */
  function judgeA2a(r: PeerRequest, msg: Call): RpcRefusal | undefined {
    const allowed = r.peer.allows === undefined || r.peer.allows(msg.method);
    record(r, msg, allowed, allowed ? undefined : 'SIDECAR_A2A_METHOD_NOT_ALLOWED');
    if (allowed) return undefined;
    const id = msg.kind === 'request' ? msg.id : undefined;
    return { code: 'SIDECAR_A2A_METHOD_NOT_ALLOWED', rpcCode: -32601, id, data: { method: msg.method, peer: r.peer.name } };
  }

  async function read(r: PeerRequest): Promise<Buffer | RpcRefusal> {
    const encoding = r.req.headers['content-encoding'];
    // A compressed message cannot be judged, so it is not sent.
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return { code: 'SIDECAR_MCP_PARSE_ERROR', rpcCode: -32700, status: 400 };
    if (r.peer.kind === 'a2a') return readBody(r.req, o.maxRequestBytes);
    try {
      return await readBody(r.req, maxMessageBytes);
    } catch (err) {
      if (isSidecarError(err) && err.code === 'SIDECAR_BODY_TOO_LARGE') return { code: 'SIDECAR_MCP_MESSAGE_TOO_LARGE', rpcCode: -32600 };
      throw err;
    }
  }

  async function post(r: PeerRequest): Promise<void> {
    const mcp = r.peer.kind === 'mcp';
    const body = await read(r);
    if (!Buffer.isBuffer(body)) return refuse(r, body);
    const revision = mcp ? revisionOf(r.req.headers) : undefined;
    if (typeof revision === 'object') return refuse(r, revision);
    const msg = parseMessage(body, maxDepth);
    if (isProblem(msg)) return refuse(r, { ...msg, status: 400 });
    const call: RpcCall | undefined =
      msg.kind === 'response' ? undefined : revision === undefined ? a2aCallOf(r.req.headers, msg) : mcpCallOf(r.req.headers, msg, revision);
    const refuseCall = (refusal: RpcRefusal) => {
      if (call !== undefined) telemetry.refused(call, r.peer, r.req.headers, refusal);
      refuse(r, refusal, call?.method);
    };
    if (revision === STATELESS) {
      const refusal = checkStateless(r.req.headers, msg, revision);
      if (refusal !== undefined) return refuseCall(refusal);
    }
    const verdict = msg.kind === 'response' ? undefined : mcp ? judgeMcp(r, msg) : judgeA2a(r, msg);
    if (typeof verdict === 'object') return refuseCall(verdict);
    if (r.res.destroyed) return;
    const traced = call === undefined ? undefined : telemetry.start(call, r.peer, r.req.headers);
    dispatchToPeer(dispatcher, { ...r, body, responseBody: verdict, traced });
  }

  return async function peerHop(r) {
    const method = r.req.method;
    if (method === 'POST') return post(r);
    const hasBody = r.req.headers['content-length'] !== undefined ? r.req.headers['content-length'] !== '0' : r.req.headers['transfer-encoding'] !== undefined;
    // Messages come only by POST: a body on another method (honoured as a method override) would go unjudged.
    if (hasBody) return refuse(r, { code: 'SIDECAR_MCP_INVALID_REQUEST', rpcCode: -32600, status: 400 });
    // An MCP GET stream replays earlier answers when resumed: filter those too.
    const filter = r.peer.kind === 'mcp' && method === 'GET' ? createListFilter(undefined, undefined, keep(r.peer), maxMessageBytes) : undefined;
    dispatchToPeer(dispatcher, { ...r, body: null, responseBody: filter });
  };
}
