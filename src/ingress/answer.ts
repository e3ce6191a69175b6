import { sendError, writeSocketError, type SidecarError } from '../errors/index.ts';
import type { RequestContext } from '../core/index.ts';

/**
 * The one place where the sidecar answers a request of the ingress itself (its errors, from
 * any stage, the proxy or the WebSocket relay; CORS preflights; refresh replies) and counts
 * the body it wrote into bytes_out, which is the body the client got, whoever produced it.
 */
export function answerError(ctx: RequestContext, err: SidecarError, requestIdHeader: string, headers?: Record<string, string>): void {
  ctx.errorCode = err.code;
  if (ctx.res === undefined) {
    // A WebSocket handshake: answered on the raw socket.
    ctx.upgradeStatus = err.status;
    ctx.bytesOut += writeSocketError(ctx.socket, err, ctx.requestId, requestIdHeader);
  } else count(ctx, sendError(ctx.res, err, ctx.requestId, headers, requestIdHeader));
}

/** Writes the reply a stage set (ctx.reply). */
export function answerReply(ctx: RequestContext, requestIdHeader: string): void {
  const reply = ctx.reply!;
  const res = ctx.res!;
  // Answered already (a request timeout while a stage ran).
  if (res.writableEnded) return;
  const body = reply.body ?? '';
  const length = Buffer.byteLength(body);
  // A body left unread (perhaps never sent: no 100 Continue) must not be read as the next request.
  const unread = ctx.clientBody !== undefined && !ctx.req.complete ? { connection: 'close' } : undefined;
  res.writeHead(reply.status, {
    ...Object.fromEntries(ctx.responseHeaders),
    ...reply.headers,
    ...unread,
    [requestIdHeader]: ctx.requestId,
    'content-length': String(length),
  });
  res.end(body);
  count(ctx, length);
}

/** Node.js writes no body for HEAD, whatever it is given. */
function count(ctx: RequestContext, bytes: number): void {
  if (ctx.req.method !== 'HEAD') ctx.bytesOut += bytes;
}
