/**
 * The known traffic the full-stack test sends, and what the backends must then show. Every
 * expected count is derived from this plan, and the plan itself is checked against the
 * statuses the sidecar really answered.
 */
import { randomBytes } from 'node:crypto';
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

/** The sidecar's auth, policy, Redis, rate limit and LLM egress for the plan (telemetry is added by the caller). */
export const sidecarConfig = (policyFile: string, redisUrl: string, egress: { address: string; provider: string }) => `egress:
  address: ${egress.address}
  allowHttp: true
  providers:
    anthropic: { origin: ${egress.provider} }
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

export interface Planned {
  id: string;
  method: string;
  path: string;
  role?: string;
  headers?: Record<string, string>;
  body?: string;
  /** The status the sidecar must answer. */
  status: number;
  /** The route template (the endpoint label), or unmatched. */
  endpoint: string;
  /** The error_type of the access record: a SIDECAR_* code (of a refusal or a failure). */
  errorType?: string;
  /** Sent while the demo agent is stopped. */
  agentDown?: boolean;
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

/** Sends one planned request to the sidecar and reads the whole answer (an SSE stream to its end). */
export async function send(sidecarUrl: string, p: Planned): Promise<Answer> {
  const headers: Record<string, string> = { 'x-request-id': p.id, ...p.headers };
  if (p.role !== undefined) headers.authorization = `Bearer ${await tokenFor(p.role)}`;
  const res = await fetch(new URL(p.path, sidecarUrl), { method: p.method, headers, body: p.body, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: await res.text() };
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
