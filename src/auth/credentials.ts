import type { IncomingMessage } from 'node:http';
import { SidecarError } from '../errors/index.ts';

/** What a request presents: a bearer token or an API key. */
export type Credential = { kind: 'jwt'; token: string } | { kind: 'api_key'; key: string };

export interface CredentialSources {
  /** Header carrying `Bearer <token>`; undefined when JWT auth is off. */
  bearerHeader?: string | undefined;
  /** Cookie carrying the token, when configured. */
  cookie?: string | undefined;
  /** Header carrying an API key; undefined when API keys are off. */
  apiKeyHeader?: string | undefined;
}

// RFC 6750 §2.1: the scheme is case-insensitive; one or more spaces, then the token.
// Sliced by hand: a regex over a kilobyte token is measurable on the per-request path.
function bearerToken(raw: string): string | undefined {
  if (raw.length < 6 || raw.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  if (raw.length > 6 && raw.charCodeAt(6) !== 32 && raw.charCodeAt(6) !== 9) return undefined;
  const token = raw.slice(7).trim();
  if (token === '' || token.includes(' ')) throw new SidecarError('SIDECAR_TOKEN_MALFORMED');
  return token;
}

/**
 * Compiles where credentials are read from. A bearer token wins over an API key when a
 * request carries both, and the Authorization header wins over the cookie. A header with
 * another scheme (Basic, …) is not a credential of ours: the caller decides on 401.
 */
export function createCredentialReader(sources: CredentialSources): (req: IncomingMessage) => Credential | undefined {
  const { bearerHeader, cookie, apiKeyHeader } = sources;
  const cookiePrefix = cookie === undefined ? undefined : `${cookie}=`;

  return (req) => {
    if (bearerHeader !== undefined) {
      const value = req.headers[bearerHeader];
      const raw = Array.isArray(value) ? value[0] : value;
      const token = raw === undefined ? undefined : bearerToken(raw);
      if (token !== undefined) return { kind: 'jwt', token };
      if (cookiePrefix !== undefined && req.headers.cookie !== undefined) {
        const token = readCookie(req.headers.cookie, cookiePrefix);
        if (token !== undefined && token !== '') return { kind: 'jwt', token };
      }
    }
    if (apiKeyHeader !== undefined) {
      const value = req.headers[apiKeyHeader];
      const key = Array.isArray(value) ? value[0] : value;
      if (key !== undefined && key !== '') return { kind: 'api_key', key: key.trim() };
    }
    return undefined;
  };
}

function readCookie(header: string, prefix: string): string | undefined {
  for (const part of header.split(';')) {
    const pair = part.trim();
    if (pair.startsWith(prefix)) {
      const value = pair.slice(prefix.length);
      return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
    }
  }
  return undefined;
}
