import { errors } from 'undici';
import { SidecarError, type SidecarErrorCode } from '../errors/index.ts';

// The one place where a failure to reach the upstream becomes a status and a code:
// refused or unreachable -> 502, DNS -> 502, invalid HTTP -> 502, timeouts -> 504.
const BY_CODE: ReadonlyMap<string, SidecarErrorCode> = new Map([
  ['UND_ERR_CONNECT_TIMEOUT', 'SIDECAR_UPSTREAM_CONNECT_TIMEOUT'],
  ['UND_ERR_HEADERS_TIMEOUT', 'SIDECAR_UPSTREAM_TIMEOUT'],
  ['UND_ERR_BODY_TIMEOUT', 'SIDECAR_UPSTREAM_TIMEOUT'],
  ['ETIMEDOUT', 'SIDECAR_UPSTREAM_TIMEOUT'],
  ['ENOTFOUND', 'SIDECAR_UPSTREAM_UNRESOLVABLE'],
  ['EAI_AGAIN', 'SIDECAR_UPSTREAM_UNRESOLVABLE'],
]);

/**
 * Invalid HTTP from the upstream, whoever noticed it. undici's parser throws HTTPParserError,
 * whose `code` is often undefined (so it is known by its class); node:http's (WebSocket
 * handshakes) has an HPE_* code. Then: a head over the parser's limit, a body that does not
 * match its Content-Length or is over the size limit, and what node:http refuses to write as
 * the client's head (a status, reason phrase or header the upstream sent).
 */
const PROTOCOL_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_HEADERS_OVERFLOW',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'ERR_HTTP_INVALID_STATUS_CODE',
  'ERR_INVALID_CHAR',
  'ERR_INVALID_HTTP_TOKEN',
  'ERR_HTTP_INVALID_HEADER_VALUE',
]);
/** undici's SocketError for a 100 or 101 nobody asked for: the upstream spoke, wrongly. */
const PROTOCOL_SOCKET_MESSAGES: ReadonlySet<string> = new Set(['bad response', 'bad upgrade']);

const CONNECTION_FAILURES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

/** Thrown by a response handler when the upstream's head is not HTTP (a status outside 100..599). */
export class UpstreamProtocolError extends Error {
  override readonly name = 'UpstreamProtocolError';
}

/**
 * The status of an upstream's head, checked before it is relayed: RFC 9110 15 allows 100..599
 * only. 1xx heads are interim (undici reports them too) and are not relayed.
 */
export function upstreamStatusKind(status: number): 'final' | 'interim' {
  if (!Number.isInteger(status) || status < 100 || status > 599)
    throw new UpstreamProtocolError(`The upstream answered with status ${status}, which is not HTTP.`);
  return status < 200 ? 'interim' : 'final';
}

/**
 * The reason phrase to relay: a client ignores it (RFC 9112 4), so one in obs-text, which
 * node:http will not write, gives way to the standard phrase; control characters are not HTTP.
 */
export function relayedReason(reason: string | undefined): string | undefined {
  if (reason === undefined || !NOT_VCHAR.test(reason)) return reason;
  if (CONTROL.test(reason)) throw new UpstreamProtocolError('The upstream sent a control character in its reason phrase.');
  return undefined;
}
const NOT_VCHAR = /[^\t\x20-\x7e]/;
// Control characters are what this pattern is for: a reason phrase carrying one fails the response.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

export function upstreamError(err: unknown): SidecarError {
  if (err instanceof SidecarError) return err;
  if (isProtocolError(err)) return new SidecarError('SIDECAR_UPSTREAM_PROTOCOL_ERROR', { cause: err });
  for (const code of errorCodes(err)) {
    const mapped = BY_CODE.get(code);
    if (mapped !== undefined) return new SidecarError(mapped, { cause: err });
  }
  return new SidecarError('SIDECAR_UPSTREAM_UNAVAILABLE', { cause: err });
}

/**
 * Connection-level failures: the request did not reach the upstream's application. An upstream
 * that answered, even with invalid HTTP, may have acted on the request: that is never one.
 */
export function isConnectionFailure(err: unknown): boolean {
  return !isProtocolError(err) && errorCodes(err).some((c) => CONNECTION_FAILURES.has(c));
}

function isProtocolError(err: unknown): boolean {
  let e = err as { code?: unknown; cause?: unknown; message?: unknown } | null | undefined;
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    if (e instanceof errors.HTTPParserError || e instanceof UpstreamProtocolError) return true;
    if (typeof e.code === 'string') {
      if (e.code.startsWith('HPE_') || PROTOCOL_CODES.has(e.code)) return true;
      if (e.code === 'UND_ERR_SOCKET' && typeof e.message === 'string' && PROTOCOL_SOCKET_MESSAGES.has(e.message)) return true;
    }
    e = e.cause as typeof e;
  }
  return false;
}

/** The error's code and those of its causes (undici wraps socket errors). */
function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let e = err as { code?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    if (typeof e.code === 'string') codes.push(e.code);
    e = e.cause as typeof e;
  }
  return codes;
}
