import type { IncomingMessage } from 'node:http';
import { SidecarError } from '../errors/index.ts';

/**
 * The origin-form target (path and query) of a request, or a 400. Absolute-form is
 * accepted only when it names the Host this request was sent to (RFC 9112 3.2.2);
 * asterisk-form and anything else never reach the upstream.
 */
export function requestTarget(req: IncomingMessage): string {
  checkHost(req);
  const url = req.url ?? '';
  if (url.charCodeAt(0) === 47 /* / */) return url;
  if (/^https?:\/\//i.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      throw new SidecarError('SIDECAR_INVALID_TARGET', { cause });
    }
    const host = req.headers.host?.toLowerCase();
    if (host === undefined || parsed.host.toLowerCase() !== host || parsed.username !== '' || parsed.password !== '') {
      throw new SidecarError('SIDECAR_FOREIGN_AUTHORITY');
    }
    return `${parsed.pathname}${parsed.search}`;
  }
  throw new SidecarError('SIDECAR_INVALID_TARGET');
}

/** HTTP/1.1 requires exactly one Host (RFC 9112 3.2); two are a request-smuggling signal. */
function checkHost(req: IncomingMessage): void {
  const raw = req.rawHeaders;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  if (count > 1 || (count === 0 && req.httpVersionMinor >= 1)) {
    throw new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'An HTTP/1.1 request needs exactly one Host header.' });
  }
}
