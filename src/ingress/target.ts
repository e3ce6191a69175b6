import type { IncomingMessage } from 'node:http';
import { SidecarError } from '../errors/index.ts';

/**
 * The origin-form target (path and query) of a request, or a 400. Absolute-form is
 * accepted only when it names the Host this request was sent to (RFC 9112 3.2.2);
 * asterisk-form and anything else never reach the upstream.
 */
export function requestTarget(req: IncomingMessage): string {
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
