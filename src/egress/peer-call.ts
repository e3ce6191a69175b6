import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { chainTransforms, type BodyTransform, type ResponseBodyHook } from '../core/index.ts';
import { sendError, SidecarError } from '../errors/index.ts';
import type { RpcClientCall } from '../jsonrpc/index.ts';
import { connectionTokens, HOP_BY_HOP, Relay, relayedReason, upstreamError, upstreamStatusKind } from '../proxy/index.ts';
import type { Peer } from './peers.ts';

export interface PeerHop {
  peer: Peer;
  /** Path and query for the peer (the route prefix removed). */
  path: string;
  req: IncomingMessage;
  res: ServerResponse;
  body: Buffer | Readable | null;
  requestId: string;
  draining: boolean;
  /** A rewrite of the answer (a filtered tools/list); the peer is then asked for an uncompressed one. */
  responseBody: ResponseBodyHook | undefined;
  /** The JSON-RPC call's CLIENT span: its traceparent replaces the agent's, and it ends with the answer. */
  traced?: RpcClientCall | undefined;
}

/** Sends the agent's request to its MCP server or A2A peer, and the answer back with backpressure. */
export function dispatchToPeer(dispatcher: Dispatcher, hop: PeerHop): void {
  dispatcher.dispatch(
    { origin: hop.peer.origin, path: hop.path, method: hop.req.method as Dispatcher.HttpMethod, headers: peerHeaders(hop), body: hop.body },
    new PeerCall(hop),
  );
}

/**
 * One call to a peer: the relay's client-gone, backpressure and cut, and a rewrite whose
 * verdict may hold the head back (a list that cannot be read is refused with 502, not shown).
 */
class PeerCall extends Relay {
  readonly #hop: PeerHop;
  #transform: BodyTransform | undefined = undefined;
  #held: { status: number; reason: string | undefined; out: string[] } | undefined = undefined;
  #refused = false;
  #status = 0;

  constructor(hop: PeerHop) {
    super(hop.res, 'the agent closed the connection');
    this.#hop = hop;
  }

  #writeHead(contentLength: number | undefined): void {
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    if (contentLength !== undefined) held.out.push('content-length', String(contentLength));
    this.res.writeHead(held.status, held.reason, held.out);
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (upstreamStatusKind(status) === 'interim') return;
    this.#status = status;
    // The span's reader of the answer sees what the list filter left of it; it only looks, so
    // it asks for no uncompressed answer (a compressed one goes unread).
    const rewrite = this.#hop.responseBody?.(status, headers);
    const read = this.#hop.traced?.answers?.(status, headers);
    const transform = rewrite === undefined ? read : read === undefined ? rewrite : chainTransforms(rewrite, read);
    this.#transform = transform;
    const out: string[] = [];
    const listed = connectionTokens(headers.connection);
    for (const name in headers) {
      if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
      const value = headers[name];
      if (Array.isArray(value)) for (const v of value) out.push(name, v);
      else if (value !== undefined) out.push(name, value);
    }
    if (this.#hop.draining) out.push('connection', 'close');
    this.#held = { status, reason: relayedReason(statusMessage), out };
    if (transform?.holdHead !== true) this.#writeHead(undefined);
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    let data: Buffer | undefined = chunk;
    if (this.#transform !== undefined) {
      if (this.#refused) return;
      try {
        data = this.#transform.push(chunk);
      } catch (err) {
        this.#refused = true;
        c.pause();
        setImmediate(() => c.abort(err as Error));
        return;
      }
      if (data === undefined || data.length === 0) return;
      this.#writeHead(undefined);
    }
    this.send(data);
  }

  onResponseEnd(c: Dispatcher.DispatchController): void {
    let tail: Buffer | undefined;
    try {
      tail = this.#transform?.end();
    } catch (err) {
      setImmediate(() => this.onResponseError(c, err as Error));
      return;
    }
    this.unwatch();
    this.#writeHead(tail?.length ?? 0);
    this.res.end(tail);
    this.#hop.traced?.end(this.#status >= 400 ? String(this.#status) : undefined);
  }

  onResponseError(_c: Dispatcher.DispatchController | null, err: Error): void {
    this.unwatch();
    if (this.clientLeft(err)) {
      this.#hop.traced?.end('aborted');
      return;
    }
    const e = err instanceof SidecarError ? err : upstreamError(err);
    this.#hop.traced?.end(e.code);
    // A held head never left: the refusal can still be an answer of its own.
    if (!this.res.headersSent) sendError(this.res, e, this.#hop.requestId);
    else this.cut(e);
  }
}

/**
 * The agent's headers in their order, less hop-by-hop ones, Host, a buffered body's length and
 * the configured ones, which replace them; a traced call's traceparent and tracestate are the
 * sidecar's CLIENT span's (a child of the agent's).
 */
function peerHeaders(hop: PeerHop): string[] {
  const raw = hop.req.rawHeaders;
  const listed = connectionTokens(hop.req.headers.connection);
  const { headerNames } = hop.peer;
  const buffered = Buffer.isBuffer(hop.body);
  const identity = hop.responseBody !== undefined;
  const trace = hop.traced?.traceHeaders ?? [];
  const traced = trace.length > 0;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed?.has(name) || name === 'host' || headerNames.has(name)) continue;
    if ((buffered && name === 'content-length') || (identity && name === 'accept-encoding')) continue;
    if (traced && (name === 'traceparent' || name === 'tracestate')) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  out.push('host', hop.peer.host, ...trace, ...hop.peer.headers);
  if (identity) out.push('accept-encoding', 'identity');
  return out;
}
