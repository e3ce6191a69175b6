import net from 'node:net';

/**
 * A byte relay, the floor of any user-space hop in Node.js: each accepted connection is piped
 * to a new connection to the upstream and back, with no HTTP parsing at all. Used by
 * bench:egress to tell what crossing one more Node process costs, apart from HTTP.
 *
 * Usage: node bench/lib/tcp-relay.ts <host:port to listen on> <upstream host:port>
 */
const [listen, upstream] = process.argv.slice(2);
if (!listen || !upstream) throw new Error('usage: tcp-relay.ts <host:port> <upstream host:port>');
const split = (a: string) => [a.slice(0, a.lastIndexOf(':')), Number(a.slice(a.lastIndexOf(':') + 1))] as const;
const [upHost, upPort] = split(upstream);
const server = net.createServer({ noDelay: true }, (client) => {
  const up = net.connect({ host: upHost, port: upPort, noDelay: true });
  client.pipe(up).pipe(client);
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
});
const [host, port] = split(listen);
server.listen(port, host);
