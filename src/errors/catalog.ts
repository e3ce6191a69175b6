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
  SIDECAR_HEADER_NAME_REFUSED: {
    status: 400,
    message:
      "A request header name holds `_` or `.`, which the agent's server may read as the `-` spelling; this sidecar refuses them (proxy.headersWithUnderscores).",
  },
  SIDECAR_PATH_INVALID: { status: 400, message: 'The request path has an encoding the sidecar refuses (encoded slash, backslash, NUL or a bad escape).' },
  SIDECAR_UPGRADE_REFUSED: { status: 400, message: 'Only WebSocket upgrades are proxied, and only when proxy.websockets is on.' },
  SIDECAR_HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are larger than limits.maxHeaderBytes allows.' },
  SIDECAR_BODY_TOO_LARGE: { status: 413, message: 'The request body is larger than limits.maxBodyBytes allows.' },
  SIDECAR_REQUEST_TIMEOUT: { status: 408, message: 'The client did not send the whole request in time.' },
  SIDECAR_EXPECTATION_FAILED: { status: 417, message: 'The Expect header asks for something other than 100-continue, which this proxy cannot meet.' },
  SIDECAR_SHUTTING_DOWN: { status: 503, message: 'The sidecar is shutting down; retry on another instance.' },
  // Identity (401: who are you?) and access (403: not allowed).
  SIDECAR_CREDENTIALS_MISSING: { status: 401, message: 'This route needs a bearer token or an API key.' },
  SIDECAR_TOKEN_MALFORMED: { status: 401, message: 'The bearer token is not a well-formed JWT.' },
  SIDECAR_TOKEN_TOO_LARGE: { status: 401, message: 'The bearer token is larger than auth.jwt.maxTokenBytes allows.' },
  SIDECAR_TOKEN_ALGORITHM_REFUSED: { status: 401, message: 'The token is signed with an algorithm this sidecar does not accept.' },
  SIDECAR_TOKEN_KEY_UNKNOWN: { status: 401, message: 'No configured key matches the token (kid).' },
  SIDECAR_TOKEN_SIGNATURE_INVALID: { status: 401, message: 'The token signature does not verify.' },
  SIDECAR_TOKEN_EXPIRED: { status: 401, message: 'Token has expired.' },
  SIDECAR_TOKEN_NOT_YET_VALID: { status: 401, message: 'The token is not valid yet (nbf).' },
  SIDECAR_TOKEN_CLAIM_INVALID: { status: 401, message: 'A token claim (iss, aud, exp or a required claim) is missing or wrong.' },
  SIDECAR_TOKEN_TYPE_REFUSED: { status: 401, message: 'A refresh token cannot be used as an access token.' },
  SIDECAR_TOKEN_REVOKED: { status: 401, message: 'The token has been revoked.' },
  SIDECAR_TOKEN_AUDIENCE_REFUSED: {
    status: 401,
    message: 'The token was issued for another resource: MCP routes accept only tokens whose aud names this server (RFC 8707).',
  },
  SIDECAR_API_KEY_INVALID: { status: 401, message: 'The API key is unknown, disabled or expired.' },
  SIDECAR_REFRESH_INVALID: { status: 400, message: 'Only a valid refresh token can be exchanged for an access token.' },
  SIDECAR_FORBIDDEN: { status: 403, message: 'The caller lacks the permission this route needs.' },
  SIDECAR_ROUTE_NOT_ALLOWED: { status: 403, message: 'No policy rule allows this method and path (default deny).' },
  SIDECAR_CORS_REFUSED: { status: 403, message: 'The origin, method or headers of this cross-origin request are not allowed.' },
  // MCP routes (policy routes with an mcp: block). Refusals of a JSON-RPC request are JSON-RPC errors on
  // an HTTP 200 answer, the code in error.data.code; the status here is the one of a refused notification.
  SIDECAR_MCP_PARSE_ERROR: { status: 400, message: 'The MCP message is not valid UTF-8 JSON (JSON-RPC -32700); nothing was forwarded.' },
  SIDECAR_MCP_INVALID_REQUEST: { status: 400, message: 'The MCP message is not a valid JSON-RPC 2.0 request, notification or response (JSON-RPC -32600).' },
  SIDECAR_MCP_BATCH_REFUSED: { status: 400, message: 'JSON-RPC batches are not part of MCP since 2025-06-18: send one message per POST.' },
  SIDECAR_MCP_MESSAGE_TOO_LARGE: { status: 413, message: 'The MCP message is larger than mcp.maxMessageBytes allows.' },
  SIDECAR_MCP_MESSAGE_TOO_DEEP: { status: 400, message: 'The MCP message nests objects and arrays deeper than mcp.maxDepth allows.' },
  SIDECAR_MCP_DUPLICATE_KEY: {
    status: 400,
    message: 'An object of the MCP message names the same key twice; parsers disagree on which one counts, so it is refused.',
  },
  SIDECAR_MCP_VERSION_UNSUPPORTED: {
    status: 400,
    message: 'The MCP-Protocol-Version header names a revision this sidecar cannot authorize; use 2025-06-18, 2025-11-25 or 2026-07-28.',
  },
  SIDECAR_MCP_HEADER_MISMATCH: { status: 400, message: 'The Mcp-Method or Mcp-Name header does not match the message body (JSON-RPC -32020).' },
  SIDECAR_MCP_METHOD_FORBIDDEN: { status: 403, message: "The caller's roles lack the permission this MCP method needs on this route." },
  SIDECAR_TOOL_FORBIDDEN: { status: 403, message: "The caller's roles lack the permission this tool needs." },
  SIDECAR_PROMPT_FORBIDDEN: { status: 403, message: "The caller's roles lack the permission this prompt needs." },
  SIDECAR_RESOURCE_FORBIDDEN: { status: 403, message: "The caller's roles lack the permission this resource needs." },
  SIDECAR_ARGUMENTS_FORBIDDEN: { status: 403, message: 'The caller may use this tool or prompt only with other argument values (see error.data.argument).' },
  SIDECAR_MCP_NOT_ALLOWED: {
    status: 403,
    message: 'No rule of this MCP route names this tool, prompt or resource, and the route denies what it does not name.',
  },
  // A2A routes (policy routes with an a2a: block): refusals are JSON-RPC errors, the code in error.data.code (0.3) or
  // as the reason of a google.rpc.ErrorInfo in the error.data list (1.0).
  SIDECAR_A2A_PARSE_ERROR: { status: 400, message: 'The A2A request is not valid UTF-8 JSON (JSON-RPC -32700); nothing was forwarded.' },
  SIDECAR_A2A_INVALID_REQUEST: {
    status: 400,
    message:
      'The A2A request is not one JSON-RPC 2.0 request or notification the sidecar can read (too large, too deep, a batch, a duplicate key, compressed).',
  },
  SIDECAR_A2A_METHOD_FORBIDDEN: { status: 403, message: "The caller's roles lack the permission this A2A method needs on this route." },
  SIDECAR_SKILL_FORBIDDEN: { status: 403, message: "The caller's roles lack the permission this A2A skill needs." },
  SIDECAR_A2A_NOT_ALLOWED: {
    status: 403,
    message: 'No rule of this A2A route names the skill this message asks for (message.metadata.skillId), and the route denies what it does not name.',
  },
  // Data protection (protection.routes): a body a rule must protect that cannot be, refused unless onError: pass.
  SIDECAR_PROTECTED_BODY_INVALID: {
    status: 400,
    message:
      'This route protects request bodies and this one cannot be read as its Content-Type says (invalid JSON or UTF-8, unsupported charset or a compressed body).',
  },
  SIDECAR_PROTECTED_BODY_TOO_LARGE: {
    status: 413,
    message: 'This route protects request bodies and this one (or one of its events or lines) is larger than protection.maxBodyBytes allows.',
  },
  SIDECAR_RATE_LIMITED: { status: 429, message: 'Too many requests; retry after the time in Retry-After.' },
  SIDECAR_KEYS_UNAVAILABLE: { status: 503, message: 'The token signing keys could not be loaded yet; retry shortly.' },
  SIDECAR_STORE_UNAVAILABLE: { status: 503, message: 'A store the sidecar needs (Redis) is unreachable, and this check fails closed.' },
  // Failures reaching the upstream (one mapping, in proxy/upstream-errors.ts).
  SIDECAR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'The upstream refused or dropped the connection.' },
  SIDECAR_UPSTREAM_UNRESOLVABLE: { status: 502, message: 'The upstream host name could not be resolved.' },
  SIDECAR_UPSTREAM_CONNECT_TIMEOUT: { status: 504, message: 'Connecting to the upstream timed out.' },
  SIDECAR_UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream did not answer in time.' },
  SIDECAR_UPSTREAM_PROTOCOL_ERROR: { status: 502, message: 'The upstream sent a response that is not valid HTTP.' },
  SIDECAR_UPSTREAM_BODY_UNPROTECTABLE: {
    status: 502,
    message: 'The agent answered with a body this route must protect that cannot be read (invalid JSON, compressed, or over protection.maxBodyBytes).',
  },
  SIDECAR_MCP_UPSTREAM_UNREADABLE: {
    status: 502,
    message:
      "The agent's answer to an MCP list request cannot be read to filter it (not JSON, compressed, or over mcp.maxMessageBytes); it is not shown unfiltered.",
  },
  SIDECAR_CIRCUIT_OPEN: { status: 503, message: 'The upstream failed repeatedly; requests fail fast until a probe succeeds.' },
  SIDECAR_UPSTREAM_BUSY: {
    status: 503,
    message: 'Every connection to the upstream stayed busy for upstream.queueTimeout, or upstream.maxQueue requests were already waiting; retry shortly.',
  },
  // LLM egress (the agent's calls to its providers).
  SIDECAR_EGRESS_ROUTE_UNKNOWN: {
    status: 404,
    message:
      'No LLM provider, MCP server or A2A peer is configured under this path; use /anthropic or /openai (egress.providers), or a route of egress.mcpServers or egress.agents.',
  },
  SIDECAR_BUDGET_EXCEEDED: { status: 429, message: 'The LLM budget of this agent is spent for the current window; the call was not sent to the provider.' },
  SIDECAR_TOOL_NOT_ALLOWED: {
    status: 403,
    message: "This agent may not call this tool: it is not in the MCP server's allowlist (egress.mcpServers.<name>.tools); the call was not sent.",
  },
  SIDECAR_A2A_METHOD_NOT_ALLOWED: {
    status: 403,
    message: "This agent may not call this A2A method: it is not in the peer's allowlist (egress.agents.<name>.methods); the call was not sent.",
  },
  // The OTLP relay (telemetry.relay): the agent's own telemetry, refused before anything is forwarded.
  SIDECAR_RELAY_MALFORMED: { status: 400, message: 'The OTLP export request is not a valid protobuf request of its signal; nothing of it was forwarded.' },
  SIDECAR_RELAY_TOO_LARGE: { status: 413, message: 'The OTLP export request is larger than telemetry.relay.maxMessageBytes allows.' },
  SIDECAR_RELAY_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    message:
      'The relay takes OTLP as protobuf (gRPC, or HTTP with application/x-protobuf), uncompressed or gzip; set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf or grpc.',
  },
  SIDECAR_RELAY_NOT_FOUND: { status: 404, message: 'The relay takes POST /v1/traces, /v1/metrics and /v1/logs, and the OTLP gRPC Export methods.' },
  // Admin listener.
  SIDECAR_NOT_FOUND: { status: 404, message: 'No such admin endpoint.' },
  SIDECAR_BAD_ADMIN_REQUEST: { status: 400, message: 'The admin request is not valid: send JSON {"jti", "exp"} or {"sub", "before"}.' },
  SIDECAR_INTERNAL: { status: 500, message: 'The sidecar failed unexpectedly; see its logs with the request id.' },
  // Operator errors at start-up (exit status 2).
  SIDECAR_USAGE_INVALID: { status: 0, message: 'A command-line option is missing or invalid; see --help.' },
  SIDECAR_CONFIG_UNREADABLE: { status: 0, message: 'The configuration file cannot be read.' },
  SIDECAR_CONFIG_PARSE: { status: 0, message: 'The configuration file is not valid YAML.' },
  SIDECAR_CONFIG_ENV_MISSING: { status: 0, message: 'The configuration names an environment variable that is not set and has no default.' },
  SIDECAR_CONFIG_INVALID: { status: 0, message: 'The configuration does not match the schema.' },
  SIDECAR_TLS_INVALID: { status: 0, message: 'The TLS certificate or key cannot be loaded.' },
  SIDECAR_POLICY_INVALID: { status: 0, message: 'The policy file does not match its schema.' },
  SIDECAR_API_KEYS_INVALID: { status: 0, message: 'The API key file does not match its schema.' },
  SIDECAR_PROTECTION_KEYS_INVALID: { status: 0, message: 'A protection key (key ring file, key file, environment variable or passphrase) cannot be loaded.' },
  SIDECAR_ENVELOPE_INVALID: { status: 0, message: 'The value is not an encrypted envelope (enc:v1:<key id>:<base64url>).' },
  SIDECAR_ENCRYPTION_KEY_UNKNOWN: {
    status: 0,
    message: 'No key of the key ring has the id this value was encrypted with; put the retired key back in the ring to decrypt it.',
  },
  SIDECAR_DECRYPT_FAILED: { status: 0, message: 'The value does not decrypt: it was altered, or encrypted with another key under the same id.' },
  SIDECAR_INPUT_INVALID: {
    status: 0,
    message: 'Some input lines were not valid; each is reported with its line number and left out, the others were processed.',
  },
  SIDECAR_CREDENTIAL_UNAVAILABLE: {
    status: 0,
    message:
      'A provider credential (egress.providers.<provider>.credential) cannot be read: its variable is unset or empty, or its file is missing, unreadable or holds no key.',
  },
  SIDECAR_LISTEN_FAILED: { status: 0, message: 'A listener could not bind its address.' },
  SIDECAR_AGENT_START_FAILED: {
    status: 0,
    message: 'run -- <command>: the agent command could not be started (not found, or not executable); exit status 127 or 126.',
  },
  // Operator warnings at start-up (the start goes on).
  SIDECAR_OTEL_ENV_INVALID: {
    status: 0,
    message:
      'An OTEL_* environment variable has a value the sidecar cannot use; it is ignored (one warning line each), and the configuration or the default applies.',
  },
  // agent-sidecar inject (exit status 2, nothing written).
  SIDECAR_INJECT_UNREADABLE: { status: 0, message: 'The manifest or compose file cannot be read.' },
  SIDECAR_INJECT_PARSE: { status: 0, message: 'The input is not valid YAML.' },
  SIDECAR_INJECT_KIND_UNSUPPORTED: { status: 0, message: 'The object asks for injection, but its kind cannot be injected.' },
  SIDECAR_INJECT_PORT_NOT_FOUND: { status: 0, message: "The agent container's port cannot be found." },
  SIDECAR_INJECT_INVALID: { status: 0, message: 'A field of the input has a shape or value injection cannot work with.' },
  SIDECAR_INJECT_UNWRITABLE: { status: 0, message: 'The output file cannot be written.' },
  SIDECAR_ADMIN_UNREACHABLE: { status: 0, message: 'The admin API of the sidecar cannot be reached; check --admin-url and that the sidecar runs.' },
} as const satisfies Record<string, { status: number; message: string }>;

/** Every stable error code, as a type (like jose's JOSEErrorCode). */
export type SidecarErrorCode = keyof typeof catalog;

export class SidecarError extends Error {
  override readonly name = 'SidecarError';
  readonly code: SidecarErrorCode;
  readonly status: number;
  /** Extra fields that go into the JSON body (for example the missing permission). */
  readonly details: Readonly<Record<string, unknown>> | undefined;
  /** Response headers that go with it (Retry-After, WWW-Authenticate). */
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(
    code: SidecarErrorCode,
    options: { message?: string; cause?: unknown; details?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(options.message ?? catalog[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = catalog[code].status;
    this.details = options.details;
    this.headers = options.headers;
  }
}

export function isSidecarError(err: unknown): err is SidecarError {
  return err instanceof SidecarError;
}
