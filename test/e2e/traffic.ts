/**
 * The known traffic the full-stack test sends, and what the backends must then show. Every
 * expected count is derived from this plan, and the plan itself is checked against the
 * statuses the sidecar really answered.
 */
import { randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { issueToken } from '../../src/auth/issuer.ts';

export const JWT_SECRET = randomBytes(32).toString('base64url');
/** Route limit of the test's rate-limited route: 2 per minute for one caller. */
export const LIMITED_PATH = '/api/v1/conversations';

/** Secrets planted in the planted request: the collector must mask them everywhere. */
export const PLANTED = {
  email: `jane.doe.${randomBytes(3).toString('hex')}@example.com`,
  apiKey: `sk-ant-api03-${randomBytes(30).toString('base64url')}`,
};

/** The LLM call through egress: a model priced by the test's own price table entry. */
export const LLM = {
  model: 'claude-e2e-1',
  /** USD per million tokens. */
  prices: { input: 2, output: 10, cacheRead: 0.2, cacheWrite: 2.5 },
  /** What the fake provider's stream reports: message_delta output counts are cumulative. */
  usage: { input: 100, cacheRead: 2000, cacheWrite: 300, outputs: [10, 42] },
  /** Tokens per minute: 85% in use. */
  tokenLimit: 100_000,
  tokensRemaining: 15_000,
  budgetUsd: 100,
};

/**
 * MCP through the sidecar: the agent's MCP server (test/e2e/agent-server.ts) behind an MCP
 * route of the policy, and the same server as the agent's own, through the egress listener.
 */
export const MCP = {
  /** The policy's MCP route, the path the agent serves MCP on. */
  route: '/mcp',
  /** egress.mcpServers.<server>: the agent calls it at /mcp/<server>/mcp on the egress listener. */
  server: 'tools',
  /** The caller's role on the route: it may see and call the allowed tool only. */
  role: 'mcp_client',
  /** Allowed to the role, and the egress allowlist. */
  allowed: 'get_weather',
  /** Refused to the role, and not on the egress allowlist. */
  refused: 'delete_document',
  version: '2025-06-18',
} as const;

/** The demo policy plus the MCP route: the role may call the allowed tool; the refused one needs a permission only admins have. */
export function policyWithMcp(demoPolicy: string): string {
  const policy = parse(demoPolicy) as { roles: Record<string, string[]>; routes: object[] };
  policy.roles[MCP.role] = ['use:mcp', 'call:weather'];
  policy.roles.admin!.push('use:mcp', 'call:weather', 'manage:documents');
  policy.routes.push({
    path: MCP.route,
    methods: { POST: 'use:mcp', GET: 'use:mcp', DELETE: 'use:mcp' },
    mcp: { default: 'deny', tools: { [MCP.allowed]: 'call:weather', 'delete_*': 'manage:documents' } },
  });
  return stringify(policy);
}

/** The sidecar's auth, policy, Redis, rate limit and egress (LLM, MCP) for the plan (telemetry is added by the caller). */
export const sidecarConfig = (policyFile: string, redisUrl: string, egress: { address: string; provider: string; mcpServer: string }) => `egress:
  address: ${egress.address}
  allowHttp: true
  providers:
    anthropic: { origin: ${egress.provider} }
  mcpServers:
    ${MCP.server}: { origin: ${egress.mcpServer}, tools: [${MCP.allowed}] }
  prices:
    ${LLM.model}: ${JSON.stringify(LLM.prices)}
  budgets:
    limits:
      - { window: day, usd: ${LLM.budgetUsd} }
auth:
  jwt:
    secret: \${env:JWT_SECRET}
    algorithms: [HS256]
policy:
  file: ${policyFile}
stores:
  redis:
    url: ${redisUrl}
rateLimit:
  routes:
    - { path: ${LIMITED_PATH}, methods: [GET], requests: 2, per: 1m }
audit:
  stdout: false
# The planted values must reach the collector in clear: its redaction is what is tested here
# (the sidecar's own protection of telemetry has its tests).
protection:
  telemetry:
    enabled: false
`;

/** A JSON-RPC message to an MCP endpoint (a notification without id). */
export interface Rpc {
  method: string;
  id?: number;
  params?: Record<string, unknown>;
}

export interface Planned {
  id: string;
  method: string;
  path: string;
  role?: string;
  headers?: Record<string, string>;
  body?: string;
  /** An MCP message, the body; sent with the session the endpoint's last initialize opened. */
  rpc?: Rpc;
  /** The status the sidecar must answer. */
  status: number;
  /** The route template (the endpoint label), or unmatched. */
  endpoint: string;
  /** The error_type of the access record: a SIDECAR_* code (of a refusal or a failure); for an MCP message, its error.data.code. */
  errorType?: string;
  /** Sent while the demo agent is stopped. */
  agentDown?: boolean;
}

/**
 * An MCP session on one endpoint: initialize, notifications/initialized, tools/list, a
 * tools/call of the allowed tool and one of the refused tool, which the sidecar answers itself
 * (HTTP 200, a JSON-RPC error) with `refusal`.
 */
function mcpSession(path: string, refusal: string, also: Pick<Planned, 'role' | 'endpoint'>): Array<Omit<Planned, 'id'>> {
  const call = (id: number, name: string, args: object): Rpc => ({ id, method: 'tools/call', params: { name, arguments: args } });
  const messages: Array<Pick<Planned, 'rpc' | 'status' | 'errorType'>> = [
    {
      rpc: { id: 1, method: 'initialize', params: { protocolVersion: MCP.version, capabilities: {}, clientInfo: { name: 'e2e', version: '1' } } },
      status: 200,
    },
    { rpc: { method: 'notifications/initialized' }, status: 202 },
    { rpc: { id: 2, method: 'tools/list' }, status: 200 },
    { rpc: call(3, MCP.allowed, { city: 'Oslo' }), status: 200 },
    { rpc: call(4, MCP.refused, { id: 'doc-1' }), status: 200, errorType: refusal },
  ];
  return messages.map((m) => ({ method: 'POST', path, ...also, ...m }));
}

/** The agent's own MCP session through the egress listener, to the same MCP server; refused: not on the allowlist. */
export function egressMcpPlan(run: string): Planned[] {
  const path = `/mcp/${MCP.server}${MCP.route}`;
  return mcpSession(path, 'SIDECAR_TOOL_NOT_ALLOWED', { endpoint: path }).map((p, i) => ({ id: `${run}-egress-mcp-${i + 1}`, ...p }));
}

export function plan(run: string): Planned[] {
  let n = 0;
  const id = () => `${run}-${++n}`;
  const times = (k: number, p: Omit<Planned, 'id'>): Planned[] => Array.from({ length: k }, () => ({ id: id(), ...p }));
  return [
    ...times(5, { method: 'GET', path: '/api/v1/agents', role: 'analyst', status: 200, endpoint: '/api/v1/agents' }),
    ...times(2, { method: 'GET', path: '/api/v1/agents/research', role: 'analyst', status: 200, endpoint: '/api/v1/agents/{agent_id}' }),
    ...times(1, {
      method: 'POST',
      path: '/api/v1/chat',
      role: 'admin',
      headers: { 'content-type': 'application/json' },
      body: '{"message":"hello"}',
      status: 200,
      endpoint: '/api/v1/chat',
    }),
    ...times(3, { method: 'GET', path: '/api/v1/agents', status: 401, endpoint: '/api/v1/agents', errorType: 'SIDECAR_CREDENTIALS_MISSING' }),
    // The planted secrets: an e-mail address in the path, an API key in the User-Agent.
    ...times(1, {
      method: 'GET',
      path: `/api/v1/agents/${PLANTED.email}`,
      headers: { 'user-agent': `e2e-probe ${PLANTED.apiKey}` },
      status: 401,
      endpoint: '/api/v1/agents/{agent_id}',
      errorType: 'SIDECAR_CREDENTIALS_MISSING',
    }),
    ...times(2, { method: 'GET', path: '/api/v1/agents', role: 'user', status: 403, endpoint: '/api/v1/agents', errorType: 'SIDECAR_FORBIDDEN' }),
    ...times(2, { method: 'GET', path: LIMITED_PATH, role: 'agent_operator', status: 200, endpoint: LIMITED_PATH }),
    ...times(2, { method: 'GET', path: LIMITED_PATH, role: 'agent_operator', status: 429, endpoint: LIMITED_PATH, errorType: 'SIDECAR_RATE_LIMITED' }),
    // A refused tool call is answered 200: a refusal, but no 4xx, so a success in agent_requests.
    ...mcpSession(MCP.route, 'SIDECAR_TOOL_FORBIDDEN', { role: MCP.role, endpoint: MCP.route }).map((p) => ({ id: id(), ...p })),
    ...times(2, {
      method: 'GET',
      path: '/api/v1/agents',
      role: 'analyst',
      status: 502,
      endpoint: '/api/v1/agents',
      errorType: 'SIDECAR_UPSTREAM_UNAVAILABLE',
      agentDown: true,
    }),
  ];
}

const tokens = new Map<string, string>();
async function tokenFor(role: string): Promise<string> {
  let t = tokens.get(role);
  if (t === undefined) tokens.set(role, (t = await issueToken(JWT_SECRET, { sub: `e2e-${role}`, roles: [role] }, 30 * 60_000)));
  return t;
}

export interface Answer {
  status: number;
  body: string;
}

/** Mcp-Session-Id by MCP endpoint URL: an initialize's answer opens a session, the later messages carry it. */
const mcpSessions = new Map<string, string>();

/** Sends one planned request to the sidecar and reads the whole answer (an SSE stream to its end). */
export async function send(sidecarUrl: string, p: Planned): Promise<Answer> {
  const url = new URL(p.path, sidecarUrl).href;
  const headers: Record<string, string> = { 'x-request-id': p.id, ...p.headers };
  if (p.role !== undefined) headers.authorization = `Bearer ${await tokenFor(p.role)}`;
  let body = p.body;
  if (p.rpc !== undefined) {
    Object.assign(headers, { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MCP.version });
    const session = mcpSessions.get(url);
    if (session !== undefined) headers['mcp-session-id'] = session;
    body = JSON.stringify({ jsonrpc: '2.0', ...p.rpc });
  }
  const res = await fetch(url, { method: p.method, headers, body, signal: AbortSignal.timeout(15_000) });
  const session = res.headers.get('mcp-session-id');
  if (p.rpc?.method === 'initialize' && session !== null) mcpSessions.set(url, session);
  return { status: res.status, body: await res.text() };
}

/** An MCP answer's JSON-RPC result, or the stable code of its error (error.data.code); nothing for an empty answer. */
export function rpcAnswer(answer: Answer): { result?: unknown; error?: string } {
  if (answer.body === '') return {};
  const msg = JSON.parse(answer.body) as { result?: unknown; error?: { data?: { code?: string } } };
  return msg.error === undefined ? { result: msg.result } : { error: msg.error.data?.code ?? 'no data.code' };
}

/** Adds one to a count in a tally. */
function bump(tally: Record<string, number>, key: string, by = 1): void {
  tally[key] = (tally[key] ?? 0) + by;
}

/** The metric totals the plan must produce, keyed as the test's queries return them. */
export function expectedMetrics(requests: readonly Planned[]) {
  const requestsBy: Record<string, number> = {};
  const errorsBy: Record<string, number> = {};
  const rateLimitedBy: Record<string, number> = {};
  const statusBy: Record<string, number> = {};
  const authFailuresBy: Record<string, number> = {};
  let authSuccesses = 0;
  const tokenUses: Record<string, number> = {};
  for (const p of requests) {
    // Only failures are errors (5xx); a refusal (a 4xx the sidecar answered itself, with its
    // code) is the sidecar doing its job: neither a success nor an error.
    const failed = p.status >= 500;
    const refused = p.status >= 400 && p.status < 500 && p.errorType !== undefined;
    bump(requestsBy, `${p.endpoint} ${failed ? 'error' : refused ? 'refused' : 'success'}`);
    if (failed) bump(errorsBy, p.errorType!);
    if (p.role !== undefined) bump(tokenUses, p.role);
    if (p.status === 429) bump(rateLimitedBy, p.endpoint);
    bump(statusBy, String(p.status));
    if (p.role === undefined) bump(authFailuresBy, 'SIDECAR_CREDENTIALS_MISSING');
    else authSuccesses++;
  }
  // One token per role: verified once (a miss), then found in the token cache.
  const roles = Object.values(tokenUses);
  const tokenCache = { hits: roles.reduce((n, uses) => n + uses - 1, 0), misses: roles.length };
  return { requestsBy, errorsBy, rateLimitedBy, statusBy, authFailuresBy, authSuccesses, tokenCache };
}
