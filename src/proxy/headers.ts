import type { IncomingHttpHeaders } from 'node:http';

/**
 * Connection-specific headers that a proxy must not forward (RFC 9110 7.6.1), plus
 * `expect`, which the ingress listener has already answered with 100 Continue.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'proxy-connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade', 'expect']);

/** Header names listed in a Connection header, lower-cased; those are hop-by-hop too. */
export function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const tokens = new Set<string>();
  for (const part of Array.isArray(value) ? value : [value]) {
    for (const t of part.split(',')) {
      const name = t.trim().toLowerCase();
      if (name !== '' && name !== 'close' && name !== 'keep-alive') tokens.add(name);
    }
  }
  return tokens.size > 0 ? tokens : undefined;
}

/**
 * The response headers for the client, as a flat [name, value, …] list for writeHead:
 * hop-by-hop headers removed, everything else in the upstream's order.
 */
export function clientResponseHeaders(headers: IncomingHttpHeaders, requestIdHeader: string, requestId: string): string[] {
  const listed = connectionTokens(headers.connection);
  const out: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || name === requestIdHeader || listed?.has(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  out.push(requestIdHeader, requestId);
  return out;
}
