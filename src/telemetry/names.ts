/**
 * Every metric, attribute and log field name in one place. Metric names are chosen so that
 * an OTLP -> Prometheus translation (the collector's prometheus exporter, and our own
 * /metrics) yields the reference dashboards' names: `.` -> `_`, the unit as a suffix
 * (`s` -> `_seconds`, not repeated when already there), `_total` on monotonic counters.
 */
export const METRIC = {
  // OpenTelemetry HTTP semantic conventions.
  serverDuration: 'http.server.request.duration',
  serverActive: 'http.server.active_requests',
  clientDuration: 'http.client.request.duration',
  // The reference design's names (agent_requests_total, agent_request_duration_seconds, …).
  requests: 'agent_requests',
  requestDuration: 'agent_request_duration_seconds',
  errors: 'agent_errors',
  activeSessions: 'agent_active_sessions',
  systemInfo: 'agent_system_info',
  cacheHits: 'cache_hits',
  cacheMisses: 'cache_misses',
  // The sidecar's own.
  authAttempts: 'agent_auth_attempts',
  authzDecisions: 'agent_authorization_decisions',
  rateLimited: 'agent_rate_limited',
  revocationChecks: 'agent_revocation_checks',
  telemetryDropped: 'agent_telemetry_dropped',
} as const;

/** The reference design's histogram buckets, in seconds. */
export const REFERENCE_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30];
/** The HTTP semantic conventions' advised buckets, in seconds. */
export const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export const ATTR = {
  method: 'http.request.method',
  route: 'http.route',
  status: 'http.response.status_code',
  urlPath: 'url.path',
  urlScheme: 'url.scheme',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  clientAddress: 'client.address',
  userAgent: 'user_agent.original',
  errorType: 'error.type',
  enduser: 'enduser.id',
  requestId: 'http.request.header.x-request-id',
  /** The stable code of a request the sidecar refused (401, 403, 429, …), which is no error. */
  refusal: 'agent_sidecar.refusal',
} as const;

/** Methods kept as they are; any other becomes _OTHER (semantic conventions: bounded cardinality). */
export const KNOWN_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE']);

/** W3C Trace Context and Baggage: never passed through from a client as is. */
export const TRACE_HEADERS = ['traceparent', 'tracestate', 'baggage'] as const;

/** The endpoint label of requests that matched no route template (never the raw path). */
export const UNMATCHED = 'unmatched';
