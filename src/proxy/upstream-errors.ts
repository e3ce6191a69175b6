import { SidecarError, type SidecarErrorCode } from '../errors/index.ts';

// The one place where a failure to reach the upstream becomes a status and a code:
// refused or unreachable -> 502, DNS -> 502, timeouts -> 504.
const BY_CODE: ReadonlyMap<string, SidecarErrorCode> = new Map([
  ['UND_ERR_CONNECT_TIMEOUT', 'SIDECAR_UPSTREAM_CONNECT_TIMEOUT'],
  ['UND_ERR_HEADERS_TIMEOUT', 'SIDECAR_UPSTREAM_TIMEOUT'],
  ['UND_ERR_BODY_TIMEOUT', 'SIDECAR_UPSTREAM_TIMEOUT'],
  ['ETIMEDOUT', 'SIDECAR_UPSTREAM_TIMEOUT'],
  ['ENOTFOUND', 'SIDECAR_UPSTREAM_UNRESOLVABLE'],
  ['EAI_AGAIN', 'SIDECAR_UPSTREAM_UNRESOLVABLE'],
  ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'SIDECAR_UPSTREAM_PROTOCOL_ERROR'],
  ['UND_ERR_RES_EXCEEDED_MAX_SIZE', 'SIDECAR_UPSTREAM_PROTOCOL_ERROR'],
]);

const CONNECTION_FAILURES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

export function upstreamError(err: unknown): SidecarError {
  if (err instanceof SidecarError) return err;
  for (const code of errorCodes(err)) {
    const mapped = BY_CODE.get(code) ?? (code.startsWith('HPE_') ? 'SIDECAR_UPSTREAM_PROTOCOL_ERROR' : undefined);
    if (mapped !== undefined) return new SidecarError(mapped, { cause: err });
  }
  return new SidecarError('SIDECAR_UPSTREAM_UNAVAILABLE', { cause: err });
}

/** Connection-level failures: the request did not reach the upstream's application. */
export function isConnectionFailure(err: unknown): boolean {
  return errorCodes(err).some((c) => CONNECTION_FAILURES.has(c));
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
