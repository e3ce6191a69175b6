import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Admission, CircuitBreaker } from './breaker.ts';
import type { Blame, UpstreamHandler } from './relay.ts';
import { isConnectionFailure } from './upstream-errors.ts';

/**
 * Retry and the circuit breaker's verdict as dispatch handlers that wrap the relay, in the shape
 * of undici's own decorators (its RetryHandler, RedirectHandler): each passes every event on,
 * and steps in on the ones it is about. They are stacked per call by the forwarder rather than
 * composed as interceptors (Dispatcher.compose): the breaker admits a request before its
 * headers are built, and their decisions need the client's side (did a byte reach it, was the
 * failure its body), which an interceptor, given only the options and an opaque handler, cannot see.
 */
abstract class Decorator implements UpstreamHandler {
  protected readonly inner: UpstreamHandler;

  constructor(inner: UpstreamHandler) {
    this.inner = inner;
  }

  get replayable(): boolean {
    return this.inner.replayable;
  }
  blame(err: Error): Blame {
    return this.inner.blame(err);
  }
  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.inner.onRequestStart?.(controller, context);
  }
  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.inner.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.inner.onResponseEnd?.(controller, trailers);
  }
  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    this.inner.onResponseError?.(controller, err);
  }
}

// RFC 9110 9.2.2; retried only when they carry no body, since a streamed body cannot be replayed.
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Whether a request may be retried at all: idempotent, and nothing to send but its head. */
export function retryable(opts: Dispatcher.DispatchOptions): boolean {
  return opts.body == null && IDEMPOTENT.has(opts.method);
}

/**
 * Sends a retryable request again, up to `attempts` times, after a connection failure, as long
 * as nothing of the response reached the client and the client is still there. The relay
 * hears only the last attempt's failure; its connection slot stays held across attempts.
 */
export class RetryHandler extends Decorator {
  readonly #dispatcher: Dispatcher;
  readonly #opts: Dispatcher.DispatchOptions;
  readonly #attempts: number;
  #attempt = 0;

  constructor(inner: UpstreamHandler, dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, attempts: number) {
    super(inner);
    this.#dispatcher = dispatcher;
    this.#opts = opts;
    this.#attempts = attempts;
  }

  override onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#attempt < this.#attempts && this.inner.replayable && this.inner.blame(err) !== 'gone' && isConnectionFailure(err)) {
      this.#attempt++;
      this.#dispatcher.dispatch(this.#opts, this);
      return;
    }
    this.inner.onResponseError?.(controller, err);
  }
}

/**
 * Tells the breaker one verdict per request, whatever the retries (the retry handler wraps
 * this one, so it hears no failure that is retried): a retry runs under the request's
 * admission (the half-open probe stays the probe), and only the last attempt's outcome counts. A final status in
 * `failureStatuses` is a failure; so is an error the upstream is to blame for; a client that
 * left or whose body failed is no verdict (abandon). The verdict follows the relay's own
 * handling, so that a request the relay's freed slot starts is admitted as before it.
 */
export class BreakerHandler extends Decorator {
  readonly #breaker: CircuitBreaker;
  readonly #admission: Admission;
  readonly #failureStatuses: ReadonlySet<number>;
  #settled = false;

  constructor(inner: UpstreamHandler, breaker: CircuitBreaker, admission: Admission, failureStatuses: ReadonlySet<number>) {
    super(inner);
    this.#breaker = breaker;
    this.#admission = admission;
    this.#failureStatuses = failureStatuses;
  }

  #settle(ok: boolean | undefined): void {
    if (this.#settled) return;
    this.#settled = true;
    if (ok === true) this.#breaker.success(this.#admission);
    else if (ok === false) this.#breaker.failure(this.#admission);
    else this.#breaker.abandon(this.#admission);
  }

  override onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    // What the relay throws (a head it cannot relay, a client answered already) ends the call
    // through onResponseError, which gives the verdict then.
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
    if (statusCode >= 200) this.#settle(!this.#failureStatuses.has(statusCode));
  }

  override onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    const blame = this.inner.blame(err);
    try {
      this.inner.onResponseError?.(controller, err);
    } finally {
      this.#settle(blame === 'upstream' ? false : undefined);
    }
  }
}
