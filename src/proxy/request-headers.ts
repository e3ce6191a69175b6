import type { RequestContext } from '../core/index.ts';
import { foldsLikeCgi, type HeadersWithUnderscores } from '../ingress/index.ts';
import { connectionTokens, HOP_BY_HOP } from './headers.ts';

// Set by the sidecar itself, so never taken from the client as is.
const SET_BY_SIDECAR: readonly string[] = ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'];
// Other proxies' headers that frameworks trust for the client address, the base path or even
// the URL to execute (IIS, Symfony): from a client they could undo what was authorized.
// Kept, like Forwarded, only from a trusted proxy.
const PROXY_ONLY: ReadonlySet<string> = new Set([
  'forwarded',
  'x-real-ip',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-original-url',
  'x-rewrite-url',
]);

const CGI_FOLD = /[_.]/g;

export type { HeadersWithUnderscores };

export interface RequestHeaderOptions {
  requestIdHeader: string;
  /** proxy.headersWithUnderscores; default `drop`. */
  headersWithUnderscores?: HeadersWithUnderscores;
  /** Told of each client header dropped for its `_` or `.` (a debug log); omit for nothing. */
  onFoldingHeaderDropped?: (ctx: RequestContext, name: string) => void;
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
  // Everything fixed at start-up is one set, so a header costs one lookup; in the `-`
  // spelling, so that no spelling of a name in it gets through (see HeadersWithUnderscores).
  const drop: ReadonlySet<string> = new Set(
    [...HOP_BY_HOP, ...SET_BY_SIDECAR, ...PROXY_ONLY, requestIdHeader, ...(options.alwaysStrip ?? [])].map((n) => n.toLowerCase().replace(CGI_FOLD, '-')),
  );
  // `refuse` never gets here with such a header; should one come, it is dropped.
  const allowFolding = options.headersWithUnderscores === 'allow';
  const onDropped = options.onFoldingHeaderDropped;
  return function buildRequestHeaders(ctx) {
    const raw = ctx.req.rawHeaders;
    const listed = connectionTokens(ctx.req.headers.connection);
    const fwd = ctx.forwarded;
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      let name = lower;
      if (foldsLikeCgi(lower)) {
        if (!allowFolding) {
          onDropped?.(ctx, raw[i]!);
          continue;
        }
        // Allowed, but never as a spelling of a header the sidecar removes or sets, nor of
        // Content-Length, by which the agent's server could frame the body.
        name = lower.replace(CGI_FOLD, '-');
        if (name === 'content-length' || ctx.strippedHeaders.has(lower) || ctx.upstreamHeaders.has(lower) || listed?.has(lower)) continue;
      }
      if (drop.has(name) || ctx.strippedHeaders.has(name) || ctx.upstreamHeaders.has(name) || listed?.has(name)) {
        if (fwd.trusted && PROXY_ONLY.has(name)) out.push(raw[i]!, raw[i + 1]!);
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
