import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';

/** The reason an upstream call is aborted when its client goes away. */
export class ClientGone extends Error {
  override readonly name = 'ClientGone';
}

/**
 * The client-facing half of an upstream call, the one both hops share (the proxy's, to the
 * upstream, and the egress's, to an LLM provider): an undici dispatch handler that aborts the
 * call with ClientGone once the client goes away, pauses the upstream's body while the client's
 * socket is full, and cuts the client's connection when the call fails after the head, which
 * is all HTTP/1.1 allows. A subclass writes the head and the body, one instance per call; the
 * methods are on the prototype, so the close listener (and a drain listener, once the client
 * falls behind) are the only functions a call allocates.
 */
export abstract class Relay implements Dispatcher.DispatchHandler {
  /** The current attempt's controller: a retry gets a new one through onRequestStart. */
  controller: Dispatcher.DispatchController | undefined = undefined;
  readonly res: ServerResponse;
  readonly #gone: string;
  readonly #onClose = (): void => {
    if (!this.res.writableFinished) this.controller?.abort(new ClientGone(this.#gone));
  };
  #resume: (() => void) | undefined = undefined;

  /** @param gone the message of the ClientGone a call is aborted with. */
  constructor(res: ServerResponse, gone: string) {
    this.res = res;
    this.#gone = gone;
    res.once('close', this.#onClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Gone before undici started the request (it waited for a connection).
    if (this.res.destroyed) controller.abort(new ClientGone(this.#gone));
  }

  /** Writes to the client; while its socket is full, the upstream's body waits (backpressure). */
  protected send(data: Buffer): void {
    if (!this.res.write(data)) {
      this.controller?.pause();
      this.res.once('drain', (this.#resume ??= () => this.controller?.resume()));
    }
  }

  /** The call is over: the client's leaving no longer aborts it. */
  protected unwatch(): void {
    this.res.removeListener('close', this.#onClose);
  }

  /** The call failed because the client went away (this error, or what the call was aborted with). */
  clientLeft(err: Error): boolean {
    return err instanceof ClientGone || this.controller?.reason instanceof ClientGone;
  }

  /**
   * After the head, a cut connection is the only honest signal of a failed response left
   * (HTTP/1.1); `reason` is what the socket is destroyed with.
   */
  protected cut(reason?: Error): void {
    this.res.destroy(reason);
  }
}

/** Who a failed call is down to: the client left, its request was at fault (its body), or the upstream. */
export type Blame = 'gone' | 'client' | 'upstream';

/**
 * What the retry and circuit-breaker handlers (decorators.ts) ask of the relay they wrap:
 * facts of the client's side that undici's dispatch cannot see.
 */
export interface UpstreamHandler extends Dispatcher.DispatchHandler {
  /** Nothing of the response reached the client yet: the request may be sent again. */
  readonly replayable: boolean;
  blame(err: Error): Blame;
}
