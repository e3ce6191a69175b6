import http, { STATUS_CODES, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SidecarError } from '../errors/index.ts';
import { answerError } from '../ingress/index.ts';
import type { RequestContext, RequestObserver, UpgradeRelay } from '../core/index.ts';
import type { RequestHeaderBuilder } from './request-headers.ts';
import { relayedReason, upstreamError, upstreamStatusKind } from './upstream-errors.ts';

export interface UpgraderOptions {
  upstreamUrl: string;
  connectTimeout: number;
  requestIdHeader: string;
  buildHeaders: RequestHeaderBuilder;
  onUpstreamError?: (ctx: RequestContext, err: SidecarError) => void;
  observer?: RequestObserver | undefined;
}

export type Upgrader = UpgradeRelay;

/**
 * WebSocket upgrades go through node:http rather than the undici pool: each tunnel owns its
 * connection for its whole life, and a refused handshake (any non-101) must be relayed as is.
 */
export function createUpgrader(options: UpgraderOptions): Upgrader {
  const url = new URL(options.upstreamUrl);
  const transport = url.protocol === 'https:' ? https : http;
  const open = new Set<Duplex>();

  return {
    open,
    closeAll() {
      for (const s of open) s.destroy();
    },
    upgrade(ctx, head, done) {
      const client = ctx.socket;
      // Gone already (while an asynchronous stage ran): nothing to relay.
      if (client.destroyed || client.readableEnded) {
        done();
        return;
      }
      const observer = options.observer;
      observer?.upstreamStart(ctx);
      const headers = options.buildHeaders(ctx);
      headers.push('connection', 'Upgrade', 'upgrade', String(ctx.req.headers.upgrade));
      const proxyReq = transport.request({
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port,
        method: ctx.req.method,
        path: ctx.target,
        headers,
        agent: false,
        timeout: options.connectTimeout,
      });
      const fail = (err: unknown) => {
        const e = upstreamError(err);
        options.onUpstreamError?.(ctx, e);
        observer?.upstreamEnd(ctx, undefined, e);
        answerError(ctx, e, options.requestIdHeader);
        done();
      };
      proxyReq.once('timeout', () => proxyReq.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })));
      proxyReq.once('error', fail);
      // Once the upstream answered (or the client left), a later upstream error only ends
      // the exchange: it is not the upstream's failure to report, nor a second answer to write.
      const settled = () => {
        proxyReq.removeListener('error', fail).on('error', () => client.destroy());
        client.removeListener('error', abandon).removeListener('close', abandon).removeListener('end', abandon);
      };
      // The client may leave during the handshake (a reset, or a FIN: server sockets are
      // half-open): then there is nothing to tunnel.
      const abandon = () => {
        settled();
        proxyReq.destroy();
        client.destroy();
        done();
      };
      client.once('error', abandon).once('close', abandon).once('end', abandon);

      proxyReq.once('upgrade', (upRes: IncomingMessage, upstream: Duplex, upHead: Buffer) => {
        const line = statusLine(upRes);
        if (line instanceof Error) {
          proxyReq.removeListener('error', fail).on('error', () => undefined);
          upstream.destroy();
          fail(line);
          return;
        }
        settled();
        observer?.upstreamEnd(ctx, upRes.statusCode, undefined);
        if (client.destroyed || client.readableEnded) {
          upstream.destroy();
          done();
          return;
        }
        ctx.upgradeStatus = upRes.statusCode;
        (upstream as Socket).setTimeout(0);
        client.write(line + rawHeaderLines(upRes.rawHeaders, ctx.requestId, options.requestIdHeader) + '\r\n');
        if (upHead.length > 0) client.write(upHead);
        if (head.length > 0) upstream.write(head);
        const both = () => {
          open.delete(client);
          client.destroy();
          upstream.destroy();
          done();
        };
        open.add(client);
        if (observer !== undefined) {
          client.on('data', (chunk: Buffer) => void (ctx.bytesIn += chunk.length));
          upstream.on('data', (chunk: Buffer) => void (ctx.bytesOut += chunk.length));
        }
        // WebSocket has no half-close: when one side ends, finish writing to the other, then tear down.
        upstream
          .once('close', both)
          .once('error', both)
          .once('end', () => client.end(both));
        client
          .once('close', both)
          .once('error', both)
          .once('end', () => upstream.end(both));
        upstream.pipe(client);
        client.pipe(upstream);
      });

      // The upstream refused the upgrade: relay its answer and close.
      proxyReq.once('response', (upRes: IncomingMessage) => {
        const line = statusLine(upRes);
        if (line instanceof Error) {
          proxyReq.removeListener('error', fail).on('error', () => undefined);
          upRes.destroy();
          fail(line);
          return;
        }
        settled();
        observer?.upstreamEnd(ctx, upRes.statusCode, undefined);
        ctx.upgradeStatus = upRes.statusCode;
        client.write(line + rawHeaderLines(upRes.rawHeaders, ctx.requestId, options.requestIdHeader, true) + 'connection: close\r\n\r\n');
        upRes.on('data', (chunk: Buffer) => void (ctx.bytesOut += chunk.length));
        upRes.pipe(client);
        // Ended, cut or abandoned by the client: the exchange is over either way.
        upRes.once('close', () => {
          if (!upRes.complete) client.destroy();
          done();
        });
        client.once('close', () => upRes.destroy());
      });
      proxyReq.end();
    },
  };
}

/** The status line to relay, or the protocol error that the upstream's is not HTTP. */
function statusLine(res: IncomingMessage): string | Error {
  const status = res.statusCode ?? 0;
  try {
    upstreamStatusKind(status);
    return `HTTP/1.1 ${status} ${relayedReason(res.statusMessage) ?? STATUS_CODES[status] ?? ''}\r\n`;
  } catch (err) {
    return err as Error;
  }
}

function rawHeaderLines(raw: string[], requestId: string, requestIdHeader: string, refused = false): string {
  let out = '';
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (lower === requestIdHeader) continue;
    if (refused && (lower === 'connection' || lower === 'keep-alive' || lower === 'transfer-encoding')) continue;
    out += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${out}${requestIdHeader}: ${requestId}\r\n`;
}
