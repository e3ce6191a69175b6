import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';
import type { ForwardedValues } from '../core/index.ts';

export type ForwardedResolver = (req: IncomingMessage) => ForwardedValues;

/**
 * X-Forwarded-For/-Proto/-Host. From a trusted proxy (config `proxy.trustedProxies`) the
 * incoming values are kept and the peer appended; from anyone else they are replaced, so a
 * client cannot claim another address.
 */
export function createForwardedResolver(options: { trustedProxies: readonly string[]; tls: boolean }): ForwardedResolver {
  const trust = proxyaddr.compile([...options.trustedProxies]);
  const ownProto = options.tls ? 'https' : 'http';
  // Peers are few (a load balancer, a mesh, the clients of one node) and parsing one takes
  // about a microsecond: each peer's verdict is kept, a bounded number of them.
  const verdicts = new Map<string, boolean>();
  const trustedPeer = (peer: string): boolean => {
    let v = verdicts.get(peer);
    if (v === undefined) {
      if (verdicts.size >= MAX_PEERS) verdicts.clear();
      verdicts.set(peer, (v = trust(peer, 0)));
    }
    return v;
  };
  return function resolveForwarded(req) {
    const peer = unmapped(req.socket.remoteAddress ?? '');
    const h = req.headers;
    if (!trustedPeer(peer)) {
      return { for: peer, proto: ownProto, host: h.host, clientAddress: peer, trusted: false };
    }
    const prior = first(h['x-forwarded-for']);
    const proto = first(h['x-forwarded-proto']);
    const host = first(h['x-forwarded-host']);
    return {
      for: prior ? `${prior}, ${peer}` : peer,
      proto: proto ?? ownProto,
      host: host ?? h.host,
      // With no X-Forwarded-For the trusted peer is the client.
      clientAddress: prior === undefined ? peer : unmapped(proxyaddr(req, trust)),
      trusted: true,
    };
  };
}

const MAX_PEERS = 10_000;

function first(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : v;
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
