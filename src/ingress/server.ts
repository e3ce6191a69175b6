import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { SidecarConfig } from '../config/index.ts';
import { isSidecarError, sendError, SidecarError, writeSocketError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { ForwardedResolver } from './forwarded.ts';
import { cgiFoldingHeader } from './cgi-headers.ts';
import { answerError, answerReply } from './answer.ts';
import { ClientBody, type BodyLimits } from './body.ts';
import { type RequestBody, type RequestContext, type RequestForwarder, type RequestObserver, runStages, type Stage, type UpgradeRelay } from '../core/index.ts';
import { createDrain } from './drain.ts';
import { listenerTimeouts } from './listener.ts';
import { requestIdFrom } from './request-id.ts';
import { requestTarget } from './target.ts';
import { loadTls, watchTls } from './tls.ts';

export interface IngressOptions {
  config: Readonly<SidecarConfig>;
  stages: readonly Stage[];
  forwarder: RequestForwarder;
  upgrader: UpgradeRelay;
  resolveForwarded: ForwardedResolver;
  logger: Logger;
  observer?: RequestObserver | undefined;
}

export interface Ingress {
  readonly server: http.Server | https.Server;
  readonly inFlight: number;
  /** Stop accepting connections; requests on open keep-alive connections get Connection: close. */
  stopAccepting(): void;
  /** Resolves true once no request is in flight and no tunnel is open, false if `timeout` ms pass first. */
  idle(timeout?: number): Promise<boolean>;
  /** Cut every connection that is still open. */
  destroyAll(): void;
  readonly draining: boolean;
  /** Shutdown begun: readiness fails, responses carry Connection: close. */
  startDraining(): void;
}

const CONTEXT = Symbol('agent-sidecar.context');
/** A response and the request context it answers, for errors Node reports on the socket. */
type Answering = ServerResponse & { [CONTEXT]?: RequestContext };

/** The ingress listener: validates what arrives, runs the stages, hands over to the proxy. */
export function createIngress(options: IngressOptions): Ingress {
  const { config, stages, forwarder, upgrader, resolveForwarded, logger, observer } = options;
  const idHeader = config.proxy.requestIdHeader;
  const refuseFoldingHeaders = config.proxy.headersWithUnderscores === 'refuse';
  const bodyLimits: BodyLimits = { maxBytes: config.limits.maxBodyBytes, idleTimeout: config.limits.clientBodyTimeout };
  const serverOptions: http.ServerOptions = {
    maxHeaderSize: config.limits.maxHeaderBytes,
    ...listenerTimeouts(config.limits),
    // Checked by requestTarget, so that the refusal carries our JSON error and code.
    requireHostHeader: false,
    noDelay: true,
  };
  const tls = config.listen.tls;
  const server = tls ? https.createServer({ ...serverOptions, ...loadTls(tls) }) : http.createServer(serverOptions);
  const stopWatchingTls = tls?.reload ? watchTls(server as https.Server, tls, logger) : undefined;

  // Open WebSocket tunnels hold the listener busy too.
  const drain = createDrain(() => upgrader.open.size > 0);

  function contextFor(req: IncomingMessage, res: ServerResponse | undefined, socket: Duplex, expectContinue = false): RequestContext {
    const cl = req.headers['content-length'];
    const ctx: RequestContext = {
      req,
      res,
      socket,
      requestId: requestIdFrom(req.headers[idHeader]),
      startedAt: process.hrtime.bigint(),
      // Checked by requestTarget before anything else runs.
      target: req.url ?? '',
      forwarded: resolveForwarded(req),
      upstreamHeaders: new Map(),
      strippedHeaders: new Set(),
      responseHeaders: new Map(),
      bytesIn: cl === undefined ? 0 : Number(cl) || 0,
      bytesOut: 0,
      clientBody: undefined,
    };
    if (res !== undefined && (cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined)) {
      (ctx as { clientBody: RequestBody }).clientBody = new ClientBody(req, res, ctx, bodyLimits, expectContinue);
    }
    return ctx;
  }

  function onRequest(req: IncomingMessage, res: ServerResponse, expectContinue = false): void {
    drain.enter();
    const ctx = contextFor(req, res, req.socket, expectContinue);
    (res as Answering)[CONTEXT] = ctx;
    observer?.requestStart(ctx);
    res.once('close', () => {
      drain.leave();
      observer?.requestEnd(ctx);
    });
    try {
      ctx.target = requestTarget(req);
      if (refuseFoldingHeaders) refuseFoldingHeader(req);
    } catch (err) {
      refuse(err, ctx);
      return;
    }
    const proceed = () => {
      if (ctx.reply === undefined) forwarder.forward(ctx);
      else answerReply(ctx, idHeader);
    };
    try {
      const pending = stages.length === 0 ? undefined : runStages(stages, ctx);
      if (pending === undefined) proceed();
      else pending.then(proceed, (err: unknown) => refuse(err, ctx));
    } catch (err) {
      refuse(err, ctx);
    }
  }

  function refuse(err: unknown, ctx: RequestContext): void {
    // Answered already (a request timeout), and a reader of its body failed since.
    if (ctx.res?.writableEnded === true) return;
    const e = asSidecarError(err, logger, ctx.requestId);
    const headers: Record<string, string> = Object.fromEntries(ctx.responseHeaders);
    // Whatever body the client still sends is unread: do not reuse the connection.
    if (e.status < 500 && !ctx.req.complete) headers.connection = 'close';
    answerError(ctx, e, idHeader, headers);
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ctx = contextFor(req, undefined, socket);
    observer?.requestStart(ctx);
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      observer?.requestEnd(ctx);
    };
    const refuse = (err: unknown) => {
      answerError(ctx, asSidecarError(err, logger, ctx.requestId), idHeader);
      done();
    };
    // RFC 6455 4.1: the opening handshake is a GET.
    if (!config.proxy.websockets || req.method !== 'GET' || String(req.headers.upgrade).toLowerCase() !== 'websocket' || drain.draining) {
      refuse(new SidecarError(drain.draining ? 'SIDECAR_SHUTTING_DOWN' : 'SIDECAR_UPGRADE_REFUSED'));
      return;
    }
    const go = () => {
      // A stage that answered (CORS preflight, refresh) ended the chain before authorization.
      if (ctx.reply !== undefined) refuse(new SidecarError('SIDECAR_UPGRADE_REFUSED'));
      else upgrader.upgrade(ctx, head, done);
    };
    socket.once('close', drain.check);
    try {
      ctx.target = requestTarget(req);
      if (refuseFoldingHeaders) refuseFoldingHeader(req);
      const pending = runStages(stages, ctx);
      if (pending === undefined) go();
      else pending.then(go, refuse);
    } catch (err) {
      refuse(err);
    }
  }

  server.on('request', onRequest);
  // With a listener, Node leaves 100 Continue to us: ClientBody sends it when the body is first read.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, true));
  // RFC 9110 10.1.1: an expectation other than 100-continue cannot be met.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const requestId = requestIdFrom(req.headers[idHeader]);
    sendError(res, new SidecarError('SIDECAR_EXPECTATION_FAILED'), requestId, { connection: 'close' }, idHeader);
  });
  server.on('upgrade', onUpgrade);
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    writeSocketError(socket, new SidecarError('SIDECAR_CONNECT_NOT_SUPPORTED'), requestIdFrom(req.headers[idHeader]), idHeader);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Gone, or ended its side in the middle of a request: nobody to answer (a 499 in the records).
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const code =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 'SIDECAR_HEADERS_TOO_LARGE'
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'SIDECAR_REQUEST_TIMEOUT'
          : 'SIDECAR_MALFORMED_REQUEST';
    const e = new SidecarError(code, { cause: err });
    // The request being received (limits.clientRequestTimeout, or bad framing, during its body) is
    // answered through its response, with its request id, and whoever reads its body stops;
    // once that response started, only a cut is left.
    const res = (socket as { _httpMessage?: Answering })._httpMessage;
    const ctx = res?.[CONTEXT];
    if (res !== undefined && ctx !== undefined && !ctx.req.complete) {
      if (res.headersSent) socket.destroy();
      else refuse(e, ctx);
      ctx.clientBody?.fail(e);
      return;
    }
    // A response is under way (the request was complete, say an SSE stream, and the client then
    // sent garbage): an error written now would land inside its body.
    if (res?.headersSent === true) {
      socket.destroy();
      return;
    }
    // Nothing of the request could be read, its id included: the error gets one of its own.
    writeSocketError(socket, e, undefined, idHeader);
  });

  return {
    server,
    get inFlight() {
      return drain.inFlight;
    },
    get draining() {
      return drain.draining;
    },
    startDraining() {
      drain.start();
    },
    stopAccepting() {
      drain.start();
      stopWatchingTls?.();
      server.close();
      server.closeIdleConnections();
    },
    idle: (timeout) => drain.idle(timeout),
    destroyAll() {
      server.closeAllConnections();
      upgrader.closeAll();
    },
  };
}

function asSidecarError(err: unknown, logger: Logger, requestId: string): SidecarError {
  if (isSidecarError(err)) return err;
  logger.error({ err, request_id: requestId, error_type: 'SIDECAR_INTERNAL' }, 'unexpected error in the request path');
  return new SidecarError('SIDECAR_INTERNAL', { cause: err });
}

/** proxy.headersWithUnderscores `refuse`: a client header name with `_` or `.` refuses the request. */
function refuseFoldingHeader(req: IncomingMessage): void {
  const name = cgiFoldingHeader(req.rawHeaders);
  if (name !== undefined) throw new SidecarError('SIDECAR_HEADER_NAME_REFUSED', { details: { header: name } });
}
