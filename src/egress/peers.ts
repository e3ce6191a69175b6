import { A2A_METHODS, peerRoute, type EgressConfig } from '../config/index.ts';

/** An MCP server or A2A peer of the agent, as the egress listener routes to it. */
export interface Peer {
  readonly kind: 'mcp' | 'a2a';
  readonly name: string;
  /** Path prefix on the egress listener, e.g. /mcp/github. */
  readonly route: string;
  /** https://mcp.example.com */
  readonly origin: string;
  readonly host: string;
  /** The origin's host name and port, as spans and metrics name the peer (server.address, server.port). */
  readonly address: string;
  readonly port: number;
  /** Configured headers as [name, value, …], and their lower-cased names (the agent's own are dropped). */
  readonly headers: readonly string[];
  readonly headerNames: ReadonlySet<string>;
  /** MCP: whether the agent may call a tool; A2A: a JSON-RPC method. Undefined: anything. */
  readonly allows: ((name: string) => boolean) | undefined;
  /** The configuration key of the allowlist, which audit events name as their action. */
  readonly allowlist: string;
}

/** Tool names and prefixes ending in *, compiled once; ["*"] allows every tool, [] none. */
export function toolMatcher(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  if (prefixes.includes('')) return () => true;
  return (name) => exact.has(name) || prefixes.some((p) => name.startsWith(p));
}

/** The methods listed, each with its spelling in the other A2A revision. */
export function methodMatcher(methods: readonly string[]): (name: string) => boolean {
  const allowed = new Set<string>();
  for (const m of methods) {
    for (const [name, others] of Object.entries(A2A_METHODS)) {
      if (name !== m && !others.includes(m)) continue;
      allowed.add(name);
      for (const o of others) allowed.add(o);
    }
  }
  return (name) => allowed.has(name);
}

/** The configured MCP servers and A2A peers. */
export function peersOf(config: EgressConfig): Peer[] {
  const out: Peer[] = [];
  const common = (kind: Peer['kind'], name: string, p: { origin: string; route?: string | undefined; headers?: Record<string, string> | undefined }) => {
    const url = new URL(p.origin);
    const headers = Object.entries(p.headers ?? {});
    return {
      kind,
      name,
      route: peerRoute(kind, name, p),
      origin: url.origin,
      host: url.host,
      address: url.hostname,
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      headers: headers.flat(),
      headerNames: new Set(headers.map(([n]) => n.toLowerCase())),
    };
  };
  for (const [name, s] of Object.entries(config.mcpServers))
    out.push({ ...common('mcp', name, s), allows: toolMatcher(s.tools), allowlist: `egress.mcpServers.${name}.tools` });
  for (const [name, a] of Object.entries(config.agents))
    out.push({
      ...common('a2a', name, a),
      allows: a.methods === undefined ? undefined : methodMatcher(a.methods),
      allowlist: `egress.agents.${name}.methods`,
    });
  return out;
}

/** The peer whose route the request target is under, and the path its origin gets. */
export function peerOf(peers: readonly Peer[], target: string): { peer: Peer; path: string } | undefined {
  for (const peer of peers) {
    if (!target.startsWith(peer.route)) continue;
    const rest = target.slice(peer.route.length);
    if (rest === '') return { peer, path: '/' };
    if (rest.startsWith('/')) return { peer, path: rest };
    if (rest.startsWith('?')) return { peer, path: `/${rest}` };
  }
  return undefined;
}
