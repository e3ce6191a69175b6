import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { SidecarError } from '../errors/index.ts';
import { answerError } from '../ingress/index.ts';
import type { BodyTransform, RequestContext, RequestObserver } from '../core/index.ts';
import { clientResponseHeaders } from './headers.ts';
import { ClientGone, Relay, type Blame, type UpstreamHandler } from './relay.ts';
import { relayedReason, upstreamError, upstreamStatusKind } from './upstream-errors.ts';

/** What every call of one forwarder shares. */
export interface UpstreamScope {
  readonly requestIdHeader: string;
  /** The sidecar answers CORS itself: the upstream's Access-Control-* headers are dropped. */
  readonly ownsCors: boolean;
  readonly isDraining: () => boolean;
  readonly observer: RequestObserver | undefined;
  readonly onUpstreamError: ((ctx: RequestContext, err: SidecarError) => void) | undefined;
  /** Gives a connection slot back (admission). */
  leave(streamed: boolean): void;
}

interface HeldHead {
  statusCode: number;
  statusMessage: string | undefined;
  out: string[];
}

/** Answers with an error, unless answered already (a request timeout) while the call was under way. */
export function fail(ctx: RequestContext, err: SidecarError, requestIdHeader: string, headers?: Record<string, string>): void {
  if (ctx.res?.writableEnded === true) return;
  answerError(ctx, err, requestIdHeader, headers);
}

/**
 * One request's exchange with the upstream, from the connection slot it holds to the client's
 * response: the head (less hop-by-hop headers, plus the request id and what stages added), the
 * body (through a stage's rewrite, whose verdict may hold the head back), the trailers, and a
 * failure as a JSON error with a stable code, or a cut once the head left.
 */
export class UpstreamCall extends Relay implements UpstreamHandler {
  readonly ctx: RequestContext;
  readonly #scope: UpstreamScope;
  readonly #streamed: boolean;
  #holding = true;
  // A response body rewritten by a stage (data protection), and its head while the rewrite holds it.
  #transform: BodyTransform | undefined = undefined;
  #refused = false;
  #heldHead: HeldHead | undefined = undefined;

  constructor(scope: UpstreamScope, ctx: RequestContext, res: ServerResponse, streamed: boolean) {
    super(res, 'client closed the connection');
    this.ctx = ctx;
    this.#scope = scope;
    this.#streamed = streamed;
  }

  get replayable(): boolean {
    return !this.res.headersSent;
  }

  blame(err: Error): Blame {
    if (this.clientLeft(err)) return 'gone';
    return err instanceof SidecarError || isClientBodyError(err, this.ctx) ? 'client' : 'upstream';
  }

  /** The slot this request holds, given back once when its exchange is over. */
  #leave(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.#scope.leave(this.#streamed);
  }

  #writeHeldHead(contentLength: number | undefined): void {
    const held = this.#heldHead;
    if (held === undefined) return;
    this.#heldHead = undefined;
    if (contentLength !== undefined) held.out.push('content-length', String(contentLength));
    this.res.writeHead(held.statusCode, held.statusMessage, held.out);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    const { res, ctx } = this;
    const scope = this.#scope;
    // Answered already (a request timeout while the body was sent): no verdict on the upstream.
    if (res.writableEnded) throw new ClientGone('the client was answered already');
    // What cannot be relayed is thrown, and undici ends the exchange with it (onResponseError).
    if (upstreamStatusKind(statusCode) === 'interim') return;
    const reason = relayedReason(statusMessage);
    // Two Allow-Origin values are rejected by browsers, and the upstream's would bypass the allowlist.
    if (scope.ownsCors) for (const name in headers) if (name.startsWith('access-control-')) delete headers[name];
    const transform = ctx.responseBody?.(statusCode, headers);
    this.#transform = transform;
    const out = clientResponseHeaders(headers, scope.requestIdHeader, ctx.requestId);
    for (const [name, value] of ctx.responseHeaders) out.push(name, value);
    if (scope.isDraining()) out.push('connection', 'close');
    if (transform?.holdHead) this.#heldHead = { statusCode, statusMessage: reason, out };
    else res.writeHead(statusCode, reason, out);
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    let data: Buffer | undefined = chunk;
    const transform = this.#transform;
    if (transform !== undefined) {
      if (this.#refused) return;
      try {
        data = transform.push(chunk);
      } catch (err) {
        // On the next turn, as at the end: the frames already written (and the head) leave
        // the corked socket before the cut; nothing more is read meanwhile.
        this.#refused = true;
        c.pause();
        setImmediate(abortWith, c, err as Error);
        return;
      }
      if (data === undefined || data.length === 0) return;
      this.#writeHeldHead(undefined);
    }
    // What the client gets: after a rewrite, not what the upstream sent.
    this.ctx.bytesOut += data.length;
    this.send(data);
  }

  onResponseEnd(c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    const { res, ctx } = this;
    let tail: Buffer | undefined;
    try {
      tail = this.#transform?.end();
    } catch (err) {
      // On the next turn, so that what was already written leaves the corked socket before the cut.
      setImmediate(failWith, this, c, err as Error);
      return;
    }
    this.unwatch();
    this.#leave();
    this.#scope.observer?.upstreamEnd(ctx, res.statusCode, undefined);
    this.#writeHeldHead(tail?.length ?? 0);
    for (const _ in trailers) {
      res.addTrailers(trailers as Record<string, string>);
      break;
    }
    if (tail !== undefined) ctx.bytesOut += tail.length;
    res.end(tail);
  }

  onResponseError(_c: Dispatcher.DispatchController | null, err: Error): void {
    const { res, ctx } = this;
    const scope = this.#scope;
    this.unwatch();
    const blame = this.blame(err);
    this.#leave();
    if (blame === 'gone') {
      scope.observer?.upstreamEnd(ctx, res.headersSent ? res.statusCode : undefined, undefined);
      return;
    }
    const clientFault = blame === 'client';
    const e =
      err instanceof SidecarError
        ? err
        : clientFault
          ? new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'The request body ended early or failed.', cause: err })
          : upstreamError(err);
    scope.onUpstreamError?.(ctx, e);
    scope.observer?.upstreamEnd(ctx, res.headersSent ? res.statusCode : undefined, e);
    // After the head, answerError cuts the connection (sendError), the relay's only signal left.
    fail(ctx, e, scope.requestIdHeader, e.status === 413 || clientFault || !ctx.req.complete ? { connection: 'close' } : undefined);
  }
}

function abortWith(c: Dispatcher.DispatchController, err: Error): void {
  c.abort(err);
}

/** The relay's own failure (a rewrite that refused at the end): the retry and breaker handlers heard their verdict already. */
function failWith(call: UpstreamCall, c: Dispatcher.DispatchController, err: Error): void {
  call.onResponseError(c, err);
}

function isClientBodyError(err: Error, ctx: RequestContext): boolean {
  return (err as { code?: string }).code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || ctx.req.errored !== null || (ctx.req.destroyed && !ctx.req.complete);
}
