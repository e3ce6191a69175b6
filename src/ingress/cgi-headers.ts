/**
 * Client header names holding `_` or `.`: CGI-style servers (CGI, WSGI, Rack, FastCGI and
 * PHP behind them) name a header's variable HTTP_ + upper case + `-` as `_`, and PHP turns
 * `.` into `_` as well, so `x_auth_subject` and `x.auth.subject` are read as the same
 * HTTP_X_AUTH_SUBJECT as the sidecar's `x-auth-subject`. proxy.headersWithUnderscores:
 * `drop` them (the default; nginx and Envoy do the same), `refuse` the request (400,
 * checked by the ingress before anything else) or `allow` them, and even then none whose
 * `-` spelling is a header the sidecar removes or sets.
 */
export type HeadersWithUnderscores = 'drop' | 'refuse' | 'allow';

/** True for a header name a CGI-style server may read as another (see HeadersWithUnderscores). */
export function foldsLikeCgi(name: string): boolean {
  return name.includes('_') || name.includes('.');
}

/** The first client header name that foldsLikeCgi, or undefined: for proxy.headersWithUnderscores `refuse`. */
export function cgiFoldingHeader(rawHeaders: readonly string[]): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) if (foldsLikeCgi(rawHeaders[i]!)) return rawHeaders[i];
  return undefined;
}
