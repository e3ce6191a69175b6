import http, { type IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

/**
 * The `undici-proxy` target: the least a Node.js reverse proxy does, as the floor for any
 * Node proxy on this machine. node:http in, undici Pool.dispatch out (the sidecar's pool
 * settings: 128 connections, no pipelining), bodies streamed both ways with backpressure,
 * only hop-by-hop headers dropped. No X-Forwarded-*, request ids, timeouts, limits or error bodies.
 *
 * Usage: node bench/lib/bare-proxy.ts <host:port to listen on> <upstream origin>
 */

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function strip(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || HOP.has(k)) continue;
    if (Array.isArray(v)) for (const one of v) out.push(k, one);
    else out.push(k, v);
  }
  return out;
}

const [listen, origin] = process.argv.slice(2);
if (!listen || !origin) throw new Error('usage: bare-proxy.ts <host:port> <upstream origin>');
const pool = new Pool(origin, { connections: 128, pipelining: 1 });

const server = http.createServer({ noDelay: true }, (req, res) => {
  const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  const opts: Dispatcher.DispatchOptions = {
    path: req.url!,
    method: req.method as Dispatcher.HttpMethod,
    headers: strip(req.headers),
    body: hasBody ? req : null,
  };
  pool.dispatch(opts, {
    onRequestStart: () => {},
    onResponseStart: (_c, status, headers) => void res.writeHead(status, strip(headers)),
    onResponseData: (c, chunk: Buffer) => void (res.write(chunk) || (c.pause(), res.once('drain', () => c.resume()))),
    onResponseEnd: () => void res.end(),
    onResponseError: () => void (res.headersSent ? res.destroy() : res.writeHead(502).end()),
  });
});
const sep = listen.lastIndexOf(':');
server.listen(Number(listen.slice(sep + 1)), listen.slice(0, sep));
