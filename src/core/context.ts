import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { Context } from '@opentelemetry/api';
import type { Principal } from '../auth/index.ts';
import type { SidecarError, SidecarErrorCode } from '../errors/index.ts';

/** What every stage of the request path sees and may refine. */
export interface RequestContext {
  readonly req: IncomingMessage;
  /** Absent for WebSocket upgrades, which answer on the raw socket. */
  readonly res: ServerResponse | undefined;
  readonly socket: Duplex;
  readonly requestId: string;
  /** process.hrtime.bigint() when the request arrived. */
  readonly startedAt: bigint;
  /** Path and query the upstream receives; a stage that normalizes the path rewrites it. */
  target: string;
  /** X-Forwarded-* values and the client's address, after trusted proxies. */
  readonly forwarded: ForwardedValues;
  /** Headers added to, or replacing, the forwarded request's (lower-case names). */
  readonly upstreamHeaders: Map<string, string>;
  /** Request header names (lower-case) that are never forwarded, on top of hop-by-hop. */
  readonly strippedHeaders: Set<string>;
  /** Headers added to the client's response, the sidecar's own errors included (CORS, RateLimit). */
  readonly responseHeaders: Map<string, string>;
  /** Set by identification; absent for public routes and when auth is off. */
  principal?: Principal | undefined;
  /** The matched route template, e.g. /api/v1/agents/{agent_id} (for metrics, logs and rate limits), auth on or off. */
  route?: string | undefined;
  /** Auth off: the path could not be normalized and is forwarded as sent; no route is known. */
  pathInvalid?: boolean | undefined;
  /** The code of the error the sidecar answered with, if it did (for logs and metrics). */
  errorCode?: SidecarErrorCode | undefined;
  /** Request body bytes: the declared length, or what was counted of a chunked body (for a WebSocket: bytes to the upstream). */
  bytesIn: number;
  /**
   * Response body bytes the client got, whoever produced them: the upstream's (after a rewrite),
   * or the sidecar's own answer (ingress/answer.ts). For a WebSocket tunnel: bytes from the upstream.
   */
  bytesOut: number;
  /**
   * For a WebSocket upgrade, which has no ServerResponse: the status the client got (101, a
   * refusal, the upstream's non-101 answer); undefined while none was sent.
   */
  upgradeStatus?: number | undefined;
  /** Set by the telemetry observer when the request arrives; undefined when telemetry is off. */
  telemetry?: RequestTelemetry | undefined;
  /**
   * The client's request body, when it has one: read it through this, never from req, so that a
   * pending 100 Continue is sent and the body's limits and idle timeout apply.
   */
  readonly clientBody?: RequestBody | undefined;
  /** Set by a stage that rewrote the request body (data protection): forwarded instead of the client's. */
  requestBody?: Buffer | Readable | undefined;
  /** Set by a stage that rewrites the response body (data protection); called once the upstream's head is known. */
  responseBody?: ResponseBodyHook | undefined;
  /** Set by a stage that answers the request itself (a CORS preflight): nothing is forwarded. */
  reply?: { status: number; headers: Record<string, string>; body?: string } | undefined;
}

/** X-Forwarded-* values and the client's address, after trusted proxies (ingress/forwarded.ts). */
export interface ForwardedValues {
  for: string;
  proto: string;
  host: string | undefined;
  /** The client's address as this hop sees it: the peer, or the first untrusted hop. */
  clientAddress: string;
  /** Whether the peer is a trusted proxy, whose Forwarded header may pass. */
  trusted: boolean;
}

/** What a read of the first bytes gives: the whole body, or its head when it is longer than the cap. */
export interface BodyHead {
  body: Buffer;
  /** False when the body goes on past `body` (the rest is still unread). */
  complete: boolean;
}

/** The client's request body as stages and the proxy read it (ingress/body.ts ClientBody). */
export interface RequestBody {
  /** Reads up to `cap` bytes: the whole body, or its head with the rest unread. */
  read(cap: number): Promise<BodyHead>;
  /** The body as a stream, `head` (what read() gave) first. */
  stream(head?: Buffer): Readable;
  /** Fails the body for its reader (a timeout answered elsewhere). */
  fail(err: SidecarError): void;
}

/**
 * The telemetry observer's per-request state, as the rest of the request path may use it:
 * the context a stage's own spans are children of (the SERVER span's, or the caller's).
 */
export interface RequestTelemetry {
  readonly context: Context;
}

/**
 * Decides, from the upstream's status and headers, whether and how the response body is
 * rewritten; may edit the headers (it owns Content-Length then). Undefined: the body passes as is.
 */
export type ResponseBodyHook = (status: number, headers: IncomingHttpHeaders) => BodyTransform | undefined;

/** A synchronous body rewrite, chunk by chunk. push and end throw a SidecarError to refuse the body. */
export interface BodyTransform {
  /** The head waits until the transform first returns bytes or ends, so a refusal can still be an error response and Content-Length exact. */
  readonly holdHead: boolean;
  /** The bytes to send for this chunk; empty or undefined while a frame is incomplete. */
  push(chunk: Buffer): Buffer | undefined;
  /** What remains once the upstream's body ended. */
  end(): Buffer | undefined;
}
