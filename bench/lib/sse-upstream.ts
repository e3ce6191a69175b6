import http from 'node:http';
import { once } from 'node:events';
import { sseEvents } from './sse.ts';

/**
 * The SSE scenarios' upstream: every request (its body read first, as a provider would) is
 * answered 200 text/event-stream with the events of sseEvents(n), one write each, back to
 * back, waiting only when the socket pushes back.
 *
 * Usage: node bench/lib/sse-upstream.ts <host:port> <events per stream>
 */

const [listen, count] = process.argv.slice(2);
if (!listen || !count) throw new Error('usage: sse-upstream.ts <host:port> <events>');
const events = sseEvents(Number(count)).map((e) => Buffer.from(e));

async function stream(res: http.ServerResponse): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const e of events) {
    if (res.destroyed) return;
    if (!res.write(e)) await once(res, 'drain');
  }
  res.end();
}

const server = http.createServer({ noDelay: true }, (req, res) => {
  req.resume();
  req.once('end', () => void stream(res).catch(() => res.destroy()));
});
server.keepAliveTimeout = 60_000;
const sep = listen.lastIndexOf(':');
server.listen(Number(listen.slice(sep + 1)), listen.slice(0, sep));
