import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { answerError } from '../ingress/answer.ts';
import type { BodyHead, BodyTransform, RequestContext, RequestForwarder, RequestObserver } from '../core/index.ts';
import { prepend, readHead } from '../ingress/body.ts';
import { Admission } from './admission.ts';
import type { Admission as BreakerAdmission, CircuitBreaker } from './breaker.ts';
import { clientResponseHeaders } from './headers.ts';
import type { RequestHeaderBuilder } from './request-headers.ts';
import { isConnectionFailure, relayedReason, upstreamError, upstreamStatusKind } from './upstream-errors.ts';

export interface ForwarderOptions {
  upstream: SidecarConfig['upstream'];
  maxBodyBytes: number;
  /** limits.bufferBodyBytes: bodies up to it are received whole before a connection is taken; 0: none. */
  bufferBodyBytes: number;
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

export interface Forwarder extends RequestForwarder {
  readonly pool: Pool;
  /** Who holds an upstream connection, and who waits for one. */
  readonly admission: Admission;
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
 * The proxy hop. A request body up to limits.bufferBodyBytes is received whole first (nginx's
 * request buffering), so that a slow client never holds an upstream connection; a longer one
 * streams once that much has arrived. Each request then takes one of the pool's connections
 * through the admission step (bounded wait, a share for streamed bodies). Response bodies flow
 * as streams with backpressure. Errors before the response starts become a JSON error with a
 * stable code; after it started, the client connection is cut, which is all HTTP/1.1 allows.
 */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const { upstream, maxBodyBytes, bufferBodyBytes, requestIdHeader, buildHeaders, breaker, isDraining, ownsCors = false, observer } = options;

  function fail(ctx: RequestContext, err: SidecarError, headers?: Record<string, string>): void {
    // Answered already (a request timeout), and what was under way failed since.
    if (ctx.res?.writableEnded === true) return;
    answerError(ctx, err, requestIdHeader, headers);
  }
  /** Connection: close when the client's body was not read to its end. */
  const unread = (ctx: RequestContext) => (ctx.req.complete ? undefined : { connection: 'close' });
  const pool = createUpstreamPool(upstream);
  const gate = new Admission({
    slots: upstream.connections,
    streamedSlots: Math.max(1, Math.floor(upstream.connections * upstream.streamedBodyShare)),
    queueTimeout: upstream.queueTimeout,
    maxQueue: upstream.maxQueue,
  });
  const retries = upstream.retry.attempts;
  const failureStatuses = new Set(upstream.circuitBreaker.countStatus);

  /** Dispatches once a connection is free for it, or answers 503 SIDECAR_UPSTREAM_BUSY. */
  function admit(ctx: RequestContext, res: ServerResponse, body: Buffer | Readable | null, streamed: boolean): void {
    if (gate.tryEnter(streamed)) {
      start(ctx, res, body, streamed);
      return;
    }
    // A streamed body (the only kind that can fail while it waits) is a stream.
    const stream = streamed ? (body as Readable) : undefined;
    const stop = () => {
      res.off('close', gone);
      stream?.off('error', bodyFailed);
    };
    // The client left, or its body failed (timed out, too large) while it waited: no more waiting.
    // Nothing reached the upstream, so there is no upstream call to record.
    const gone = () => {
      stop();
      if (waiter !== undefined) gate.cancel(waiter);
    };
    const bodyFailed = (err: Error) => {
      gone();
      fail(ctx, err instanceof SidecarError ? err : new SidecarError('SIDECAR_MALFORMED_REQUEST', { cause: err }), { connection: 'close' });
    };
    const waiter = gate.wait(
      streamed,
      () => {
        stop();
        start(ctx, res, body, streamed);
      },
      (err) => {
        stop();
        refuseUnsent(ctx, err, stream);
      },
    );
    if (waiter === undefined) return;
    res.once('close', gone);
    stream?.once('error', bodyFailed);
  }

  /**
   * Answers a request that will not be sent (busy, circuit open). A body it did not read to its
   * end closes the connection, and a streamed one stops being read, its idle clock with it.
   */
  function refuseUnsent(ctx: RequestContext, err: SidecarError, stream: Readable | undefined, headers?: Record<string, string>): void {
    fail(ctx, err, { ...headers, ...unread(ctx) });
    stream?.destroy();
  }

  /** Sends the request with this body, once a connection is free for it. */
  function send(ctx: RequestContext, res: ServerResponse, body: Buffer | Readable | null, streamed: boolean): void {
    if (res.destroyed) return;
    if (Buffer.isBuffer(body) && ctx.requestBody !== body) ctx.upstreamHeaders.set('content-length', String(body.length));
    admit(ctx, res, body, streamed);
  }

  /**
   * With a connection held: the upstream call starts here (its span and duration leave out the
   * wait for the connection), the circuit breaker's admission once per request, then the first attempt.
   */
  function start(ctx: RequestContext, res: ServerResponse, body: Buffer | Readable | null, streamed: boolean): void {
    // The span's traceparent goes into the headers built next.
    observer?.upstreamStart(ctx);
    const admission = breaker?.allow() ?? 'request';
    if (admission === false) {
      const open = new SidecarError('SIDECAR_CIRCUIT_OPEN');
      observer?.upstreamEnd(ctx, undefined, open);
      refuseUnsent(ctx, open, streamed ? (body as Readable) : undefined, { 'retry-after': String(Math.ceil(upstream.circuitBreaker.openDuration / 1000)) });
      // Last: giving the connection back may start queued requests, which must not run inside this one.
      gate.leave(streamed);
      return;
    }
    const opts: Dispatcher.DispatchOptions = {
      path: ctx.target,
      method: ctx.req.method as Dispatcher.HttpMethod,
      headers: buildHeaders(ctx),
      body,
    };
    dispatch(ctx, res, opts, 0, streamed, verdictFor(admission));
  }

  /**
   * The breaker hears one verdict per request, whatever the retries: a retry runs under the
   * request's admission (the half-open probe stays the probe), and only the last attempt's
   * outcome counts.
   */
  function verdictFor(admission: BreakerAdmission): (ok: boolean | undefined) => void {
    let settled = false;
    return (ok) => {
      if (settled || breaker === undefined) return;
      settled = true;
      if (ok === true) breaker.success(admission);
      else if (ok === false) breaker.failure(admission);
      else breaker.abandon(admission);
    };
  }

  function dispatch(
    ctx: RequestContext,
    res: ServerResponse,
    opts: Dispatcher.DispatchOptions,
    attempt: number,
    streamed: boolean,
    settle: (ok: boolean | undefined) => void,
  ): void {
    // The slot this request holds, given back once when its exchange is over.
    let holding = true;
    const leave = () => {
      if (!holding) return;
      holding = false;
      gate.leave(streamed);
    };
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
        // Answered already (a request timeout while the body was sent): no verdict on the upstream.
        if (res.writableEnded) throw new ClientGone('the client was answered already');
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
        leave();
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
          leave();
          settle(undefined);
          observer?.upstreamEnd(ctx, res.headersSent ? res.statusCode : undefined, undefined);
          return;
        }
        const clientFault = err instanceof SidecarError || isClientBodyError(err, ctx);
        if (!res.headersSent && opts.body == null && attempt < retries && IDEMPOTENT.has(opts.method) && isConnectionFailure(err)) {
          // The retry keeps this request's slot.
          holding = false;
          dispatch(ctx, res, opts, attempt + 1, streamed, settle);
          return;
        }
        leave();
        settle(clientFault ? undefined : false);
        const e = err instanceof SidecarError ? err : clientFault ? new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'The request body ended early or failed.', cause: err }) : upstreamError(err);
        options.onUpstreamError?.(ctx, e);
        observer?.upstreamEnd(ctx, res.headersSent ? res.statusCode : undefined, e);
        fail(ctx, e, e.status === 413 || clientFault || !ctx.req.complete ? { connection: 'close' } : undefined);
      },
    };
    pool.dispatch(opts, handler);
  }

  return {
    pool,
    admission: gate,
    forward(ctx) {
      const { req } = ctx;
      const res = ctx.res!;
      // Answered while the stages ran (a request timeout).
      if (res.writableEnded) return;
      const source = ctx.requestBody ?? ctx.clientBody;
      if (source === undefined) {
        send(ctx, res, null, false);
        return;
      }
      if (Buffer.isBuffer(source)) {
        send(ctx, res, source, false);
        return;
      }
      const cl = req.headers['content-length'];
      if (source === ctx.clientBody && maxBodyBytes > 0 && cl !== undefined && Number(cl) > maxBodyBytes) {
        fail(ctx, new SidecarError('SIDECAR_BODY_TOO_LARGE'), { connection: 'close' });
        return;
      }
      if (bufferBodyBytes === 0) {
        send(ctx, res, source === ctx.clientBody ? ctx.clientBody.stream() : (source as Readable), true);
        return;
      }
      // The body's first bufferBodyBytes arrive before a connection is taken: the whole body when
      // it is that short, else a head that proves the client is sending.
      const head: Promise<BodyHead> = source === ctx.clientBody ? ctx.clientBody.read(bufferBodyBytes) : readHead(source as Readable, bufferBodyBytes);
      head.then(
        ({ body, complete }) => {
          if (complete) send(ctx, res, body, false);
          else send(ctx, res, source === ctx.clientBody ? ctx.clientBody.stream(body) : prepend(body, source as Readable), true);
        },
        (err: unknown) => {
          const e = err instanceof SidecarError ? err : new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'The request body ended early or failed.', cause: err });
          fail(ctx, e, unread(ctx));
        },
      );
    },
    close: () => pool.close(),
  };
}

function isClientBodyError(err: Error, ctx: RequestContext): boolean {
  return (err as { code?: string }).code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || ctx.req.errored !== null || (ctx.req.destroyed && !ctx.req.complete);
}
