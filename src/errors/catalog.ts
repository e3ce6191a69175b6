/**
 * The one catalog of errors that a client or an operator can see. Each code is stable:
 * clients and tests match on the code, never on the message.
 */
export const catalog = {
  // Requests the sidecar refuses before anything is forwarded.
  SIDECAR_MALFORMED_REQUEST: { status: 400, message: 'The request is not valid HTTP/1.1; fix the client.' },
  SIDECAR_INVALID_TARGET: { status: 400, message: 'The request target must be an origin-form path such as /api/v1/agents.' },
  SIDECAR_FOREIGN_AUTHORITY: { status: 400, message: 'The absolute request URI names another host; this is a reverse proxy, not a forward proxy.' },
  SIDECAR_CONNECT_NOT_SUPPORTED: { status: 400, message: 'CONNECT is not supported; this is a reverse proxy, not a forward proxy.' },
  SIDECAR_PATH_INVALID: { status: 400, message: 'The request path has an encoding the sidecar refuses (encoded slash, backslash, NUL or a bad escape).' },
  SIDECAR_UPGRADE_REFUSED: { status: 400, message: 'Only WebSocket upgrades are proxied, and only when proxy.websockets is on.' },
  SIDECAR_HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are larger than limits.maxHeaderBytes allows.' },
  SIDECAR_BODY_TOO_LARGE: { status: 413, message: 'The request body is larger than limits.maxBodyBytes allows.' },
  SIDECAR_REQUEST_TIMEOUT: { status: 408, message: 'The client did not send the whole request in time.' },
  SIDECAR_SHUTTING_DOWN: { status: 503, message: 'The sidecar is shutting down; retry on another instance.' },
  // Failures reaching the upstream (one mapping, in proxy/upstream-errors.ts).
  SIDECAR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'The upstream refused or dropped the connection.' },
  SIDECAR_UPSTREAM_UNRESOLVABLE: { status: 502, message: 'The upstream host name could not be resolved.' },
  SIDECAR_UPSTREAM_CONNECT_TIMEOUT: { status: 504, message: 'Connecting to the upstream timed out.' },
  SIDECAR_UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream did not answer in time.' },
  SIDECAR_UPSTREAM_PROTOCOL_ERROR: { status: 502, message: 'The upstream sent a response that is not valid HTTP.' },
  SIDECAR_CIRCUIT_OPEN: { status: 503, message: 'The upstream failed repeatedly; requests fail fast until a probe succeeds.' },
  // Admin listener.
  SIDECAR_NOT_FOUND: { status: 404, message: 'No such admin endpoint.' },
  SIDECAR_INTERNAL: { status: 500, message: 'The sidecar failed unexpectedly; see its logs with the request id.' },
  // Operator errors at start-up (exit status 2).
  SIDECAR_CONFIG_UNREADABLE: { status: 0, message: 'The configuration file cannot be read.' },
  SIDECAR_CONFIG_PARSE: { status: 0, message: 'The configuration file is not valid YAML.' },
  SIDECAR_CONFIG_ENV_MISSING: { status: 0, message: 'The configuration names an environment variable that is not set and has no default.' },
  SIDECAR_CONFIG_INVALID: { status: 0, message: 'The configuration does not match the schema.' },
  SIDECAR_TLS_INVALID: { status: 0, message: 'The TLS certificate or key cannot be loaded.' },
  SIDECAR_LISTEN_FAILED: { status: 0, message: 'A listener could not bind its address.' },
} as const satisfies Record<string, { status: number; message: string }>;

/** Every stable error code, as a type (like jose's JOSEErrorCode). */
export type SidecarErrorCode = keyof typeof catalog;

export class SidecarError extends Error {
  override readonly name = 'SidecarError';
  readonly code: SidecarErrorCode;
  readonly status: number;
  /** Extra fields that go into the JSON body (for example the missing permission). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: SidecarErrorCode, options: { message?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(options.message ?? catalog[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = catalog[code].status;
    this.details = options.details;
  }
}

export function isSidecarError(err: unknown): err is SidecarError {
  return err instanceof SidecarError;
}
