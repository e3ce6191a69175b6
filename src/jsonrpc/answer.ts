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
}

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
  const error = { code: r.rpcCode, message: catalog[r.code].message, data: { code: r.code, ...r.data, request_id: requestId } };
  const body = JSON.stringify(r.id === undefined ? { jsonrpc: '2.0', error } : { jsonrpc: '2.0', id: r.id, error });
  return { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body };
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
