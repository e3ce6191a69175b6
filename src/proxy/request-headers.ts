import type { RequestContext } from '../ingress/context.ts';
import { connectionTokens, HOP_BY_HOP } from './headers.ts';

// Set by the sidecar itself, so never taken from the client as is.
const SET_BY_SIDECAR: ReadonlySet<string> = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

export interface RequestHeaderOptions {
  requestIdHeader: string;
  /** Client headers never forwarded, fixed by configuration (identity headers, credentials). */
  alwaysStrip?: readonly string[];
  /** The upstream's host:port, or undefined to keep the client's Host. */
  upstreamHost: string | undefined;
}

export type RequestHeaderBuilder = (ctx: RequestContext) => string[];

/**
 * Builds the upstream request's headers as a flat [name, value, …] list: the client's
 * headers in their order minus hop-by-hop, stripped and sidecar-owned ones, then Host,
 * X-Forwarded-*, the request id and what stages added.
 */
export function createRequestHeaderBuilder(options: RequestHeaderOptions): RequestHeaderBuilder {
  const { requestIdHeader, upstreamHost } = options;
  // Everything fixed at start-up is one set, so a header costs one lookup.
  const drop: ReadonlySet<string> = new Set([...HOP_BY_HOP, ...SET_BY_SIDECAR, requestIdHeader, ...(options.alwaysStrip ?? [])]);
  return function buildRequestHeaders(ctx) {
    const raw = ctx.req.rawHeaders;
    const listed = connectionTokens(ctx.req.headers.connection);
    const fwd = ctx.forwarded;
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (drop.has(name) || ctx.strippedHeaders.has(name) || ctx.upstreamHeaders.has(name) || listed?.has(name)) {
        if (name === 'forwarded' && fwd.trusted) out.push(raw[i]!, raw[i + 1]!);
        continue;
      }
      out.push(raw[i]!, raw[i + 1]!);
    }
    const host = upstreamHost ?? ctx.req.headers.host;
    if (host !== undefined) out.push('host', host);
    out.push('x-forwarded-for', fwd.for, 'x-forwarded-proto', fwd.proto);
    if (fwd.host !== undefined) out.push('x-forwarded-host', fwd.host);
    out.push(requestIdHeader, ctx.requestId);
    for (const [name, value] of ctx.upstreamHeaders) out.push(name, value);
    return out;
  };
}
