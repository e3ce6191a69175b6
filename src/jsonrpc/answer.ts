import { Readable } from 'node:stream';
import type { RequestBody, RequestContext } from '../core/index.ts';
import { catalog, type SidecarErrorCode } from '../errors/index.ts';
import type { RpcId } from './message.ts';

/** A refusal the sidecar answers itself, as a JSON-RPC error on the HTTP response. */
export interface RpcRefusal {
  readonly code: SidecarErrorCode;
  /** JSON-RPC error code: -32700, -32600, -32601, -32602, or the protocol's own (MCP -32020, -32022). */
  readonly rpcCode: number;
  /** Undefined when the message's id is unknown (unreadable) or it has none (a notification). */
  readonly id?: RpcId | undefined;
  /** The HTTP status; default: 200 for a request's refusal, the catalog's otherwise. */
  readonly status?: number | undefined;
  /** Fields for error.data besides the code (permission, tool, argument, supported versions). */
  readonly data?: Record<string, unknown> | undefined;
  /**
   * How error.data is written. 'fields' (the default; MCP, A2A 0.3): one object,
   * `{ code, ...data, request_id }`. 'errorInfo' (A2A 1.0, whose JSON-RPC binding makes error.data
   * a list of google.rpc error details, specification 9.5): one google.rpc.ErrorInfo whose
   * reason is the code, domain agent-sidecar, and metadata the fields and request_id, as strings.
   */
  readonly errorData?: 'fields' | 'errorInfo' | undefined;
}

/** google.rpc.ErrorInfo.domain of the sidecar's own refusals. */
const ERROR_DOMAIN = 'agent-sidecar';
const ERROR_INFO_TYPE = 'type.googleapis.com/google.rpc.ErrorInfo';

/**
 * Answers with a JSON-RPC error response and forwards nothing. A refused request gets HTTP 200:
 * the error is the request's answer, and MCP clients hand it to their caller as such (as they
 * would an unknown tool). What is not a readable request (a parse error, a refused
 * notification) gets the HTTP error status, as the Streamable HTTP transport asks.
 */
export function replyRefusal(ctx: RequestContext, r: RpcRefusal): void {
  ctx.errorCode = r.code;
  ctx.reply = refusalAnswer(r, ctx.requestId);
}

/** The HTTP answer of a refusal, for a hop that writes its own response (the egress listener). */
export function refusalAnswer(r: RpcRefusal, requestId: string): { status: number; headers: Record<string, string>; body: string } {
  const status = r.status ?? (r.id !== undefined ? 200 : catalog[r.code].status);
  const data = r.errorData === 'errorInfo' ? [errorInfo(r, requestId)] : { code: r.code, ...r.data, request_id: requestId };
  const error = { code: r.rpcCode, message: catalog[r.code].message, data };
  const body = JSON.stringify(r.id === undefined ? { jsonrpc: '2.0', error } : { jsonrpc: '2.0', id: r.id, error });
  return { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body };
}

/** ErrorInfo.metadata is a map of strings: other values are written as JSON, null and undefined left out. */
function errorInfo(r: RpcRefusal, requestId: string): Record<string, unknown> {
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(r.data ?? {}))
    if (value !== undefined && value !== null) metadata[key] = typeof value === 'string' ? value : JSON.stringify(value);
  metadata.request_id = requestId;
  return { '@type': ERROR_INFO_TYPE, reason: r.code, domain: ERROR_DOMAIN, metadata };
}

/**
 * The client's body once read whole: a later reader (data protection) reads it again from here,
 * since the client's stream is spent.
 */
export function bufferedBody(body: Buffer): RequestBody {
  return {
    read: (cap) => Promise.resolve(body.length <= cap ? { body, complete: true } : { body: body.subarray(0, cap + 1), complete: false }),
    stream: (head) => Readable.from(head === undefined || head.length === 0 ? [body] : [head, body.subarray(head.length)], { objectMode: false }),
    fail() {},
  };
}
