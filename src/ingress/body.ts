import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import type { BodyHead, RequestBody } from '../core/index.ts';
import { SidecarError } from '../errors/index.ts';

export interface BodyLimits {
  /** limits.maxBodyBytes: a chunked body past it fails with 413; 0: no limit. */
  maxBytes: number;
  /** limits.clientBodyTimeout: no byte for this long while the body is read fails it with 408; 0: no limit. */
  idleTimeout: number;
}

/**
 * The client's request body. Whoever needs it first (the data-protection stage, the proxy)
 * reads it through here, never from ctx.req, so that:
 * - a client that sent `Expect: 100-continue` gets its `100 Continue` only now, once every
 *   stage that decides on the request (authentication, authorization, rate limits) let it
 *   through (RFC 9110 10.1.1);
 * - a chunked body's bytes are counted (ctx.bytesIn) and refused past limits.maxBodyBytes;
 * - a client that stops sending fails the body with SIDECAR_REQUEST_TIMEOUT after
 *   limits.clientBodyTimeout (nginx's client_body_timeout). The clock runs only while a reader
 *   waits for bytes: a body the upstream reads slowly (backpressure), or that waits for a
 *   connection, is not idle.
 *
 * Failures reach the reader as errors (a SidecarError), so that the client still gets its
 * answer on the open connection.
 */
export class ClientBody implements RequestBody {
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #ctx: { bytesIn: number };
  readonly #limits: BodyLimits;
  /** Its length is not declared: bytes are counted here, and limits.maxBytes applies here. */
  readonly #chunked: boolean;
  /** A 100 Continue is owed before the body is read. */
  #continue: boolean;
  #opened = false;
  #received = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The active reader's failure; undefined while nobody reads. */
  #fail: ((err: SidecarError) => void) | undefined;
  /** The stream handed to the active reader, whose buffered bytes mean the reader is behind. */
  #out: PassThrough | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, ctx: { bytesIn: number }, limits: BodyLimits, expectContinue: boolean) {
    this.#req = req;
    this.#res = res;
    this.#ctx = ctx;
    this.#limits = limits;
    this.#chunked = req.headers['content-length'] === undefined;
    this.#continue = expectContinue;
  }

  /**
   * Reads the body whole when it has at most `cap` bytes; otherwise resolves with what came
   * in once past `cap` (complete: false), and the rest stays unread for stream(head).
   */
  read(cap: number): Promise<BodyHead> {
    this.#open();
    const req = this.#req;
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const stop = () => {
        req.off('data', onData).off('end', onEnd).off('error', onAbort).off('close', onAbort);
        this.#detach();
      };
      const onData = (chunk: Buffer) => {
        const refusal = this.#count(chunk.length);
        if (refusal !== undefined) {
          stop();
          reject(refusal);
          return;
        }
        chunks.push(chunk);
        size += chunk.length;
        if (size > cap) {
          stop();
          req.pause();
          resolve({ body: Buffer.concat(chunks, size), complete: false });
        }
      };
      const onEnd = () => {
        stop();
        resolve({ body: Buffer.concat(chunks, size), complete: true });
      };
      const onAbort = (cause?: unknown) => {
        stop();
        reject(ended(cause));
      };
      this.#attach((err) => {
        stop();
        reject(err);
      });
      req.on('data', onData).once('end', onEnd).once('error', onAbort).once('close', onAbort);
      req.resume();
    });
  }

  /**
   * The body as a stream: `head` (what read() returned) first, then the rest as it arrives,
   * with backpressure. A failure destroys the returned stream with its SidecarError; the
   * client's request itself is left alone, so that the answer can still be written.
   */
  stream(head?: Buffer): Readable {
    this.#open();
    const req = this.#req;
    const out = new PassThrough();
    // Its reader may not listen yet (the request waits for a connection) or not any more.
    out.on('error', noop);
    if (head !== undefined && head.length > 0) out.write(head);
    let done = false;
    const stop = () => {
      done = true;
      req.off('data', onData).off('end', onEnd).off('error', onAbort).off('close', onAbort);
      out.off('drain', onDrain);
      this.#detach();
    };
    const fail = (err: Error) => {
      if (done) return;
      stop();
      out.destroy(err);
    };
    const onData = (chunk: Buffer) => {
      const refusal = this.#count(chunk.length);
      if (refusal !== undefined) fail(refusal);
      else if (!out.write(chunk)) req.pause();
    };
    const onDrain = () => req.resume();
    const onEnd = () => {
      stop();
      out.end();
    };
    const onAbort = (cause?: unknown) => fail(ended(cause));
    // The reader gave up (the upstream call failed or was aborted): stop reading for it.
    out.once('close', () => {
      if (!done) stop();
    });
    this.#attach(fail);
    this.#out = out;
    out.on('drain', onDrain);
    req.on('data', onData).once('end', onEnd).once('error', onAbort).once('close', onAbort);
    req.resume();
    return out;
  }

  /** Fails the active reader, if any, with `err` (a request timeout or a parse error Node found in the body). */
  fail(err: SidecarError): void {
    const fail = this.#fail;
    this.#detach();
    fail?.(err);
  }

  /** Sends the 100 Continue the client waits for, once, when the body is first wanted. */
  #open(): void {
    if (this.#opened) return;
    this.#opened = true;
    // Node decides to emit a request's 'error' (client gone) when it destroys it, and emits it a
    // tick later: a reader that stopped listening meanwhile must not leave it unhandled.
    this.#req.on('error', noop);
    if (!this.#continue) return;
    this.#continue = false;
    if (!this.#res.headersSent) this.#res.writeContinue();
  }

  #attach(fail: (err: SidecarError) => void): void {
    this.#fail = fail;
    if (this.#limits.idleTimeout > 0) this.#timer = setTimeout(ClientBody.#idle, this.#limits.idleTimeout, this).unref();
  }

  #detach(): void {
    this.#fail = undefined;
    this.#out = undefined;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** A chunk arrived: the idle clock restarts; a chunked body is counted and held to its limit. */
  #count(n: number): SidecarError | undefined {
    this.#timer?.refresh();
    if (!this.#chunked) return undefined;
    this.#received += n;
    this.#ctx.bytesIn += n;
    const max = this.#limits.maxBytes;
    return max > 0 && this.#received > max ? new SidecarError('SIDECAR_BODY_TOO_LARGE') : undefined;
  }

  static #idle(self: ClientBody): void {
    const out = self.#out;
    // Bytes that came in and are not read yet: the reader is behind, not the client.
    if (self.#req.readableLength > 0 || (out !== undefined && out.readableLength + out.writableLength > 0)) {
      self.#timer?.refresh();
      return;
    }
    self.fail(new SidecarError('SIDECAR_REQUEST_TIMEOUT'));
  }
}

function noop(): void {}

function ended(cause: unknown): SidecarError {
  if (cause instanceof SidecarError) return cause;
  return new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'The request body ended early or failed.', cause });
}

/**
 * Reads any body stream (one a stage rewrote) up to `cap` bytes, like ClientBody.read: the
 * whole of it, or its head and the stream, paused, for the rest. Its errors reject as they are.
 */
export function readHead(stream: Readable, cap: number): Promise<BodyHead> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => stream.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > cap) {
        stop();
        stream.pause();
        resolve({ body: Buffer.concat(chunks, size), complete: false });
      }
    };
    const onEnd = () => {
      stop();
      resolve({ body: Buffer.concat(chunks, size), complete: true });
    };
    const onError = (err: Error) => {
      stop();
      reject(err);
    };
    const onClose = () => {
      stop();
      reject(stream.errored ?? ended(undefined));
    };
    stream.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  });
}

/** `head`, then the rest of `stream`. */
export function prepend(head: Buffer, stream: Readable): Readable {
  const out = new PassThrough();
  out.on('error', noop);
  out.write(head);
  stream.once('error', (err) => out.destroy(err));
  out.once('close', () => {
    if (!stream.readableEnded) stream.destroy();
  });
  return stream.pipe(out);
}
