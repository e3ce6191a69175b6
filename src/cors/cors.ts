import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { RequestContext } from '../core/index.ts';

export type CorsConfig = NonNullable<SidecarConfig['cors']>;
/** A request stage: answers preflights, decorates cross-origin responses. */
export type CorsStage = (ctx: RequestContext) => void;

// RFC 9110 5.6.2 token, for method and header names.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Fetch standard: always CORS-safelisted request headers; browsers may still list them.
const SAFELISTED = ['accept', 'accept-language', 'content-language'];

/**
 * Builds the CORS stage; it runs before authentication, since browsers send preflights
 * without credentials (Fetch standard, CORS protocol). Undefined when CORS is not configured.
 *
 * - Preflight (OPTIONS with Origin and Access-Control-Request-Method): answered here with 204
 *   when origin, method and headers are allowed; otherwise SIDECAR_CORS_REFUSED.
 * - Other requests from an allowed origin get Access-Control-Allow-Origin and friends, then
 *   go on to authentication as usual. From any other origin they get no CORS headers, so the
 *   browser withholds the response from the page.
 *
 * Throws SIDECAR_CONFIG_INVALID for `*` with allowCredentials and for malformed origins.
 */
export function createCors(config: SidecarConfig['cors']): CorsStage | undefined {
  if (config === undefined) return undefined;
  const anyOrigin = config.allowedOrigins.includes('*');
  if (anyOrigin && config.allowCredentials) {
    // Fetch standard: a credentialed response with Access-Control-Allow-Origin: * is rejected by
    // browsers, and reflecting every origin instead would let any site act as the user.
    throw invalid('cors.allowedOrigins: * cannot be combined with cors.allowCredentials: true; list the exact origins, e.g. https://app.example.com');
  }
  const origins = new Set(config.allowedOrigins.filter((o) => o !== '*').map(toOrigin));
  const anyMethod = config.allowedMethods.includes('*');
  const methods = new Set(config.allowedMethods.filter((m) => m !== '*').map((m) => token(m, 'cors.allowedMethods')));
  const anyHeader = config.allowedHeaders.includes('*');
  const headers = new Set([...SAFELISTED, ...config.allowedHeaders.filter((h) => h !== '*').map((h) => token(h, 'cors.allowedHeaders'))]);
  for (const h of config.exposedHeaders) token(h, 'cors.exposedHeaders');

  // Everything a response carries, computed once.
  const allowMethods = [...methods].join(', ');
  const allowHeaders = config.allowedHeaders.filter((h) => h !== '*').join(', ');
  const exposeHeaders = config.exposedHeaders.join(', ');
  const maxAge = String(Math.floor(config.maxAge / 1000));
  const credentials = config.allowCredentials;

  const allowOrigin = (origin: string): string | undefined => (anyOrigin ? '*' : origins.has(origin) ? origin : undefined);

  return function cors(ctx: RequestContext): void {
    const origin = ctx.req.headers.origin;
    const requestedMethod = ctx.req.headers['access-control-request-method'];
    if (ctx.req.method === 'OPTIONS' && origin !== undefined && requestedMethod !== undefined) {
      const allowed = allowOrigin(origin);
      if (allowed === undefined) throw refused(`The origin ${origin} may not call this service.`);
      if (!anyMethod && !methods.has(requestedMethod)) throw refused(`The method ${requestedMethod} is not allowed for cross-origin requests.`);
      const requested = ctx.req.headers['access-control-request-headers'];
      const names =
        requested === undefined
          ? []
          : requested
              .split(',')
              .map((h) => h.trim().toLowerCase())
              .filter((h) => h !== '');
      if (!anyHeader) {
        for (const h of names) if (!headers.has(h)) throw refused(`The header ${h} is not allowed for cross-origin requests.`);
      }
      const out: Record<string, string> = {
        'access-control-allow-origin': allowed,
        'access-control-allow-methods': anyMethod ? requestedMethod : allowMethods,
        'access-control-max-age': maxAge,
        // The answer depends on these request headers: caches must key on them too.
        vary: anyHeader || anyMethod ? 'origin, access-control-request-method, access-control-request-headers' : 'origin',
      };
      // With `*`, echo what was asked: a literal `*` means any header only without credentials.
      const allowList = anyHeader ? names.join(', ') : allowHeaders;
      if (allowList !== '') out['access-control-allow-headers'] = allowList;
      if (credentials) out['access-control-allow-credentials'] = 'true';
      ctx.reply = { status: 204, headers: out };
      return;
    }

    // Fetch standard 3.2.5 (CORS protocol and HTTP caches): the response differs by Origin,
    // so caches must key on it, even on responses that carry no CORS headers.
    ctx.responseHeaders.set('vary', 'origin');
    if (origin === undefined) return;
    const allowed = allowOrigin(origin);
    if (allowed === undefined) return;
    ctx.responseHeaders.set('access-control-allow-origin', allowed);
    if (exposeHeaders !== '') ctx.responseHeaders.set('access-control-expose-headers', exposeHeaders);
    if (credentials) ctx.responseHeaders.set('access-control-allow-credentials', 'true');
  };
}

/** The serialized origin (RFC 6454 6.1) that browsers send, e.g. https://app.example.com:8443. */
function toOrigin(value: string): string {
  const fix = 'expected an origin: scheme, host and optional port, e.g. https://app.example.com';
  if (value === 'null') {
    // Sandboxed iframes and file: pages all send "null": allowing it allows any of them.
    throw invalid(`cors.allowedOrigins: "null" matches every sandboxed or file: page and is refused; ${fix}`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`cors.allowedOrigins: "${value}" is not an origin; ${fix}`);
  }
  if (url.username !== '' || url.password !== '' || !/^[a-z][a-z0-9+.-]*:\/\/[^/?#@]+\/?$/i.test(value)) {
    throw invalid(`cors.allowedOrigins: "${value}" is not an origin (no path, query or credentials); ${fix}`);
  }
  // http(s) origins as browsers serialize them (lower-case host, default port dropped);
  // other schemes (chrome-extension://id) have an opaque URL origin but are sent verbatim.
  return url.origin !== 'null' ? url.origin : value.replace(/\/$/, '').toLowerCase();
}

function token(value: string, key: string): string {
  if (!TOKEN.test(value)) throw invalid(`${key}: "${value}" is not a valid HTTP method or header name`);
  return value;
}

function refused(message: string): SidecarError {
  return new SidecarError('SIDECAR_CORS_REFUSED', { message });
}

function invalid(message: string): SidecarError {
  return new SidecarError('SIDECAR_CONFIG_INVALID', { message });
}
