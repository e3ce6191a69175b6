import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { answerError } from '../ingress/answer.ts';
import type { BodyTransform, RequestContext } from '../ingress/context.ts';
import type { RequestObserver } from '../ingress/observer.ts';
import type { Admission, CircuitBreaker } from './breaker.ts';
import { clientResponseHeaders } from './headers.ts';
import type { RequestHeaderBuilder } from './request-headers.ts';
import { isConnectionFailure, relayedReason, upstreamError, upstreamStatusKind } from './upstream-errors.ts';

export interface ForwarderOptions {
  upstream: SidecarConfig['upstream'];
  maxBodyBytes: number;
  requestIdHeader: string;
  buildHeaders: RequestHeaderBuilder;
  breaker: CircuitBreaker | undefined;
  /** The sidecar answers CORS itself: the upstream's Access-Control-* headers are dropped. */
  ownsCors?: boolean;
  /** True once shutdown began: responses then carry Connection: close. */
  isDraining: () => boolean;
  onUpstreamError?: (ctx: RequestContext, err: SidecarError) => void;
  observer?: RequestObserver | undefined;
}

export interface Forwarder {
  /** Streams the request to the upstream and the response back; never throws. */
  forward(ctx: RequestContext): void;
  readonly pool: Pool;
  close(): Promise<void>;
}

// RFC 9110 9.2.2; retried only when they carry no body, since a streamed body cannot be replayed.
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** The reason a dispatch is aborted when the client goes away. */
class ClientGone extends Error {
  override readonly name = 'ClientGone';
}

export function createUpstreamPool(upstream: SidecarConfig['upstream']): Pool {
  return new Pool(upstream.url, {
    connections: upstream.connections,
    pipelining: 1,
    keepAliveTimeout: upstream.keepAliveTimeout,
    headersTimeout: upstream.timeouts.headers,
    bodyTimeout: upstream.timeouts.body,
    connect: { timeout: upstream.timeouts.connect },
  });
}

/**
 * The proxy hop: request and response bodies flow as streams with backpressure; nothing is
 * buffered. Errors before the response starts become a JSON error with a stable code;
 * after it started, the client connection is cut, which is all HTTP/1.1 allows.
 */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const { upstream, maxBodyBytes, requestIdHeader, buildHeaders, breaker, isDraining, ownsCors = false, observer } = options;

  function fail(ctx: RequestContext, err: SidecarError, headers?: Record<string, string>): void {
    answerError(ctx, err, requestIdHeader, headers);
  }
  const pool = createUpstreamPool(upstream);
  const retries = upstream.retry.attempts;
  const failureStatuses = new Set(upstream.circuitBreaker.countStatus);

  /**
   * The breaker hears one verdict per request, whatever the retries: a retry runs under the
   * request's admission (the half-open probe stays the probe), and only the last attempt's
   * outcome counts.
   */
  function verdictFor(admission: Admission): (ok: boolean | undefined) => void {
    let settled = false;
    return (ok) => {
      if (settled || breaker === undefined) return;
      settled = true;
      if (ok === true) breaker.success(admission);
      else if (ok === false) breaker.failure(admission);
      else breaker.abandon(admission);
    };
  }

  function dispatch(ctx: RequestContext, res: ServerResponse, opts: Dispatcher.DispatchOptions, attempt: number, settle: (ok: boolean | undefined) => void): void {
    let controller: Dispatcher.DispatchController | undefined;
    const onClientClose = () => {
      if (!res.writableFinished) controller?.abort(new ClientGone('client closed the connection'));
    };
    const resume = () => controller?.resume();
    res.once('close', onClientClose);
    // A response body rewritten by a stage (data protection), and its head while the rewrite holds it.
    let transform: BodyTransform | undefined;
    let refused = false;
    let heldHead: { statusCode: number; statusMessage: string | undefined; out: string[] } | undefined;
    const writeHeldHead = (contentLength: number | undefined) => {
      if (heldHead === undefined) return;
      const { statusCode, statusMessage, out } = heldHead;
      heldHead = undefined;
      if (contentLength !== undefined) out.push('content-length', String(contentLength));
      res.writeHead(statusCode, statusMessage, out);
    };

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (res.destroyed) c.abort(new ClientGone('client closed the connection'));
      },
      onResponseStart(_c, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string) {
        // What cannot be relayed is thrown, and undici ends the exchange with it (onResponseError).
        if (upstreamStatusKind(statusCode) === 'interim') return;
        const reason = relayedReason(statusMessage);
        // Two Allow-Origin values are rejected by browsers, and the upstream's would bypass the allowlist.
        if (ownsCors) for (const name in headers) if (name.startsWith('access-control-')) delete headers[name];
        transform = ctx.responseBody?.(statusCode, headers);
        const out = clientResponseHeaders(headers, requestIdHeader, ctx.requestId);
        for (const [name, value] of ctx.responseHeaders) out.push(name, value);
        if (isDraining()) out.push('connection', 'close');
        if (transform?.holdHead) heldHead = { statusCode, statusMessage: reason, out };
        else res.writeHead(statusCode, reason, out);
        settle(!failureStatuses.has(statusCode));
      },
      onResponseData(c, chunk: Buffer) {
        let data: Buffer | undefined = chunk;
        if (transform !== undefined) {
          if (refused) return;
          try {
            data = transform.push(chunk);
          } catch (err) {
            // On the next turn, as at the end: the frames already written (and the head) leave
            // the corked socket before the cut; nothing more is read meanwhile.
            refused = true;
            c.pause();
            setImmediate(() => c.abort(err as Error));
            return;
          }
          if (data === undefined || data.length === 0) return;
          writeHeldHead(undefined);
        }
        // What the client gets: after a rewrite, not what the upstream sent.
        ctx.bytesOut += data.length;
        if (!res.write(data)) {
          c.pause();
          res.once('drain', resume);
        }
      },
      onResponseEnd(c, trailers: IncomingHttpHeaders) {
        let tail: Buffer | undefined;
        try {
          tail = transform?.end();
        } catch (err) {
          // On the next turn, so that what was already written leaves the corked socket before the cut.
          setImmediate(() => handler.onResponseError!(c, err as Error));
          return;
        }
        res.removeListener('close', onClientClose);
        observer?.upstreamEnd(ctx, res.statusCode, undefined);
        writeHeldHead(tail?.length ?? 0);
        for (const _ in trailers) {
          res.addTrailers(trailers as Record<string, string>);
          break;
        }
        if (tail !== undefined) ctx.bytesOut += tail.length;
        res.end(tail);
      },
      onResponseError(_c, err: Error) {
        res.removeListener('close', onClientClose);
        if (err instanceof ClientGone || (controller?.reason instanceof ClientGone)) {
          settle(undefined);
          observer?.upstreamEnd(ctx, res.headersSent ? res.statusCode : undefined, undefined);
          return;
        }
        const clientFault = err instanceof SidecarError || isClientBodyError(err, ctx);
        if (!res.headersSent && opts.body == null && attempt < retries && IDEMPOTENT.has(opts.method) && isConnectionFailure(err)) {
          dispatch(ctx, res, opts, attempt + 1, settle);
          return;
        }
        settle(clientFault ? undefined : false);
        const e = err instanceof SidecarError ? err : clientFault ? new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'The request body ended early or failed.', cause: err }) : upstreamError(err);
        options.onUpstreamError?.(ctx, e);
        observer?.upstreamEnd(ctx, res.headersSent ? res.statusCode : undefined, e);
        fail(ctx, e, e.status === 413 || clientFault ? { connection: 'close' } : undefined);
      },
    };
    pool.dispatch(opts, handler);
  }

  return {
    pool,
    forward(ctx) {
      const { req } = ctx;
      const res = ctx.res!;
      const cl = req.headers['content-length'];
      let body: Buffer | Readable | null = ctx.requestBody ?? null;
      if (body === null && (cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined)) {
        if (maxBodyBytes > 0 && cl !== undefined && Number(cl) > maxBodyBytes) {
          fail(ctx, new SidecarError('SIDECAR_BODY_TOO_LARGE'), { connection: 'close' });
          return;
        }
        body = maxBodyBytes > 0 && cl === undefined ? pipeline(req, new ByteLimit(maxBodyBytes, ctx), noop) : req;
      }
      observer?.upstreamStart(ctx);
      const admission = breaker?.allow() ?? 'request';
      if (admission === false) {
        const open = new SidecarError('SIDECAR_CIRCUIT_OPEN');
        observer?.upstreamEnd(ctx, undefined, open);
        fail(ctx, open, { 'retry-after': String(Math.ceil(upstream.circuitBreaker.openDuration / 1000)) });
        return;
      }
      const opts: Dispatcher.DispatchOptions = {
        path: ctx.target,
        method: req.method as Dispatcher.HttpMethod,
        headers: buildHeaders(ctx),
        body,
      };
      dispatch(ctx, res, opts, 0, verdictFor(admission));
    },
    close: () => pool.close(),
  };
}

function noop(): void {}

function isClientBodyError(err: Error, ctx: RequestContext): boolean {
  return (err as { code?: string }).code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || ctx.req.errored !== null || (ctx.req.destroyed && !ctx.req.complete);
}

/** Passes a chunked body through and fails it with 413 past the limit. */
class ByteLimit extends Transform {
  readonly #limit: number;
  readonly #ctx: RequestContext;
  constructor(limit: number, ctx: RequestContext) {
    super();
    this.#limit = limit;
    this.#ctx = ctx;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#ctx.bytesIn += chunk.length;
    if (this.#ctx.bytesIn > this.#limit) done(new SidecarError('SIDECAR_BODY_TOO_LARGE'));
    else done(null, chunk);
  }
}
