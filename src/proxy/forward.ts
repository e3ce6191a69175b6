import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { BodyHead, RequestContext, RequestForwarder, RequestObserver } from '../core/index.ts';
import { prepend, readHead } from '../ingress/index.ts';
import { Admission } from './admission.ts';
import type { CircuitBreaker } from './breaker.ts';
import { BreakerHandler, RetryHandler, retryable } from './decorators.ts';
import type { UpstreamHandler } from './relay.ts';
import type { RequestHeaderBuilder } from './request-headers.ts';
import { fail as failCall, UpstreamCall, type UpstreamScope } from './upstream-call.ts';

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

  const fail = (ctx: RequestContext, err: SidecarError, headers?: Record<string, string>) => failCall(ctx, err, requestIdHeader, headers);
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
  const failureStatuses: ReadonlySet<number> = new Set(upstream.circuitBreaker.countStatus);
  const scope: UpstreamScope = {
    requestIdHeader,
    ownsCors,
    isDraining,
    observer,
    onUpstreamError: options.onUpstreamError,
    leave: (streamed) => gate.leave(streamed),
  };

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
   * wait for the connection), the circuit breaker's admission once per request, then the call,
   * wrapped in the retry and breaker handlers it needs.
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
    // Events reach the retry handler first, so that the breaker hears the last attempt only.
    let handler: UpstreamHandler = new UpstreamCall(scope, ctx, res, streamed);
    if (breaker !== undefined) handler = new BreakerHandler(handler, breaker, admission, failureStatuses);
    if (retries > 0 && retryable(opts)) handler = new RetryHandler(handler, pool, opts, retries);
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
          const e =
            err instanceof SidecarError
              ? err
              : new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'The request body ended early or failed.', cause: err });
          fail(ctx, e, unread(ctx));
        },
      );
    },
    close: () => pool.close(),
  };
}
