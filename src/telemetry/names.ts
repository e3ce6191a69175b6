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
  // MCP semantic conventions, and the sidecar's count of tools/call decisions (agent_tool_calls_total).
  mcpServerDuration: 'mcp.server.operation.duration',
  toolCalls: 'agent_tool_calls',
  // The agent's own calls to its MCP servers on egress (agent_egress_tool_calls_total: the agent's
  // tools/call decisions by server, apart from those of its callers).
  mcpClientDuration: 'mcp.client.operation.duration',
  egressToolCalls: 'agent_egress_tool_calls',
} as const;

/** The reference design's histogram buckets, in seconds. */
export const REFERENCE_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30];
/** The HTTP semantic conventions' advised buckets, in seconds. */
export const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** The MCP conventions' advised buckets for mcp.{client,server}.operation.duration, in seconds. */
export const MCP_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

/** MCP and A2A semantic-convention attributes of a JSON-RPC operation. */
export const RPC_ATTR = {
  mcpMethod: 'mcp.method.name',
  mcpVersion: 'mcp.protocol.version',
  mcpSession: 'mcp.session.id',
  a2aMethod: 'a2a.method.name',
  a2aVersion: 'a2a.protocol.version',
  a2aTask: 'a2a.task.id',
  a2aTaskState: 'a2a.task.state',
  requestId: 'jsonrpc.request.id',
  statusCode: 'rpc.response.status_code',
  tool: 'gen_ai.tool.name',
  /** Opt-in (mcp.capture): a tools/call's arguments and result, always through data protection. */
  toolArguments: 'gen_ai.tool.call.arguments',
  toolResult: 'gen_ai.tool.call.result',
  operation: 'gen_ai.operation.name',
  errorType: 'error.type',
  /** The peer of an outbound call (mcp.client, A2A CLIENT spans). */
  serverAddress: 'server.address',
  serverPort: 'server.port',
} as const;

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

/**
 * LLM egress metrics: the GenAI semantic conventions' histograms, and counters and gauges
 * under the names the dashboards and alerts use (Prometheus: llm_tokens_total,
 * llm_api_cost_usd_total, anthropic_tokens_total, anthropic_api_cost_total,
 * llm_quota_utilization_ratio, llm_budget_utilization_ratio, …). Units in braces are
 * annotations, which the Prometheus translation leaves out of the name.
 */
export const LLM_METRIC = {
  tokenUsage: 'gen_ai.client.token.usage',
  operationDuration: 'gen_ai.client.operation.duration',
  timeToFirstChunk: 'gen_ai.client.operation.time_to_first_chunk',
  tokens: 'llm_tokens',
  cost: 'llm_api_cost_usd',
  anthropicTokens: 'anthropic_tokens',
  anthropicCost: 'anthropic_api_cost',
  requests: 'llm_requests',
  rateLimited: 'llm_rate_limited',
  retryAfter: 'llm_retry_after_seconds',
  quotaRemaining: 'llm_quota_remaining',
  quotaLimit: 'llm_quota_limit',
  quotaUtilization: 'llm_quota_utilization_ratio',
  budgetUtilization: 'llm_budget_utilization_ratio',
  budgetSpent: 'llm_budget_spent_usd',
  budgetLimit: 'llm_budget_limit_usd',
  budgetRefused: 'llm_budget_refused',
  budgetSoftLimit: 'llm_budget_soft_limit_reached',
} as const;

/** GenAI semantic-convention attributes (gen_ai.system is deprecated for gen_ai.provider.name), and the sidecar's own. */
export const GEN_AI = {
  operation: 'gen_ai.operation.name',
  provider: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  requestMaxTokens: 'gen_ai.request.max_tokens',
  requestTemperature: 'gen_ai.request.temperature',
  responseModel: 'gen_ai.response.model',
  responseId: 'gen_ai.response.id',
  finishReasons: 'gen_ai.response.finish_reasons',
  tokenType: 'gen_ai.token.type',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
  cacheReadTokens: 'gen_ai.usage.cache_read.input_tokens',
  cacheCreationTokens: 'gen_ai.usage.cache_creation.input_tokens',
  inputMessages: 'gen_ai.input.messages',
  outputMessages: 'gen_ai.output.messages',
  cost: 'agent_sidecar.llm.cost_usd',
  incomplete: 'agent_sidecar.llm.incomplete',
} as const;

/** The GenAI conventions' advised buckets: tokens, and seconds for durations and the first chunk. */
export const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
export const GEN_AI_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
export const FIRST_CHUNK_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
