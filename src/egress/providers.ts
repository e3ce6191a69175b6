import { SidecarError } from '../errors/index.ts';
import type { IncomingHttpHeaders } from 'node:http';
import type { EgressConfig } from '../config/index.ts';
import type { HeldCredential } from './credentials.ts';

/** gen_ai.provider.name values (OpenTelemetry GenAI conventions). */
export type ProviderName = 'anthropic' | 'openai';

/** The response shapes the usage readers know. */
export type Api = 'anthropic.messages' | 'openai.chat' | 'openai.completions' | 'openai.responses' | 'openai.embeddings';

export interface Provider {
  readonly name: ProviderName;
  /** Path prefix on the egress listener, e.g. /anthropic. */
  readonly route: string;
  /** https://api.anthropic.com */
  readonly origin: string;
  readonly host: string;
  readonly port: number;
  /** OpenAI: add stream_options.include_usage to streamed chat requests without stream_options. */
  readonly includeUsage: boolean;
  /** The key the sidecar holds for this provider; undefined: the agent's own key passes. */
  readonly credential: HeldCredential | undefined;
}

/** A call whose usage is read: its gen_ai.operation.name and response shape. */
export interface Operation {
  readonly name: 'chat' | 'text_completion' | 'embeddings';
  readonly api: Api;
}

const OPERATIONS: Readonly<Record<ProviderName, ReadonlyMap<string, Operation>>> = {
  anthropic: new Map([['/v1/messages', { name: 'chat', api: 'anthropic.messages' }]]),
  openai: new Map<string, Operation>([
    ['/v1/chat/completions', { name: 'chat', api: 'openai.chat' }],
    ['/v1/responses', { name: 'chat', api: 'openai.responses' }],
    ['/v1/completions', { name: 'text_completion', api: 'openai.completions' }],
    ['/v1/embeddings', { name: 'embeddings', api: 'openai.embeddings' }],
  ]),
};

/** The enabled providers of the configuration. */
export function providersOf(config: EgressConfig, credentials: Partial<Record<ProviderName, HeldCredential>> = {}): Provider[] {
  const out: Provider[] = [];
  for (const name of ['anthropic', 'openai'] as const) {
    const p = config.providers[name];
    if (!p.enabled) continue;
    const url = new URL(p.origin);
    out.push({
      name,
      route: p.route,
      origin: url.origin,
      host: url.host,
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      includeUsage: 'includeUsage' in p ? p.includeUsage : false,
      credential: credentials[name],
    });
  }
  return out;
}

/** The provider whose route the request target is under, and the path the provider gets. */
export function routeOf(providers: readonly Provider[], target: string): { provider: Provider; path: string } | undefined {
  for (const provider of providers) {
    if (!target.startsWith(provider.route)) continue;
    const rest = target.slice(provider.route.length);
    if (rest === '') return { provider, path: '/' };
    if (rest.startsWith('/')) return { provider, path: rest };
    if (rest.startsWith('?')) return { provider, path: `/${rest}` };
  }
  return undefined;
}

/** The metered operation of a POST to `path`, or undefined (listing models, counting tokens, files: passed through unmetered). */
export function operationOf(provider: Provider, method: string | undefined, path: string): Operation | undefined {
  if (method !== 'POST') return undefined;
  const q = path.indexOf('?');
  const bare = q === -1 ? path : path.slice(0, q);
  // Only canonical paths are classified: '//v1/messages', '/v1/%6Dessages' or '/v1/./messages'
  // could reach a provider that normalizes paths as a chat call that skipped the budget.
  if (NON_CANONICAL.test(bare)) throw new SidecarError('SIDECAR_PATH_INVALID');
  return OPERATIONS[provider.name].get((bare.endsWith('/') ? bare.slice(0, -1) : bare).toLowerCase());
}

// A doubled slash, a percent escape, a dot segment or a backslash.
const NON_CANONICAL = /\/\/|%|\/\.\.?(?:\/|$)|\\/;

/** One rate limit the provider reported on a response. */
export interface QuotaReading {
  /** requests, tokens, input_tokens, output_tokens */
  limitType: string;
  limit: number | undefined;
  remaining: number | undefined;
}

const ANTHROPIC_LIMITS = ['requests', 'tokens', 'input-tokens', 'output-tokens'];
const OPENAI_LIMITS = ['requests', 'tokens'];

/**
 * The rate-limit headers of a response: Anthropic's anthropic-ratelimit-{type}-{limit,remaining}
 * and OpenAI's x-ratelimit-{limit,remaining}-{type}. Every one is optional.
 */
export function quotaReadings(provider: ProviderName, headers: IncomingHttpHeaders): QuotaReading[] {
  const out: QuotaReading[] = [];
  const names = provider === 'anthropic' ? ANTHROPIC_LIMITS : OPENAI_LIMITS;
  for (const type of names) {
    const [limitName, remainingName] =
      provider === 'anthropic'
        ? [`anthropic-ratelimit-${type}-limit`, `anthropic-ratelimit-${type}-remaining`]
        : [`x-ratelimit-limit-${type}`, `x-ratelimit-remaining-${type}`];
    const limit = count(headers[limitName]);
    const remaining = count(headers[remainingName]);
    if (limit !== undefined || remaining !== undefined) out.push({ limitType: type.replace('-', '_'), limit, remaining });
  }
  return out;
}

/** Retry-After in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3). */
export function retryAfterSeconds(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - now) / 1000);
}

function count(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v);
}

/**
 * The variables the providers' official SDKs read their base URL from, pointed at the egress
 * listener (the OpenAI SDKs expect the /v1 in it; Anthropic's add it themselves).
 */
export function sdkBaseUrls(egressOrigin: string, providers: readonly Provider[]): Array<[name: string, value: string]> {
  return providers.map((p) =>
    p.name === 'anthropic' ? ['ANTHROPIC_BASE_URL', `${egressOrigin}${p.route}`] : ['OPENAI_BASE_URL', `${egressOrigin}${p.route}/v1`],
  );
}

/**
 * What an agent started by `run -- <command>` gets instead of a provider's key when the
 * sidecar holds it. The SDKs refuse to start without a key; this one means nothing to the
 * provider, and the sidecar drops it anyway.
 */
export const KEY_PLACEHOLDER = 'held-by-agent-sidecar';

/**
 * The variables the provider's SDKs read a credential from: the key, which gets the
 * placeholder, and the others (Anthropic's bearer token), which are removed.
 */
export function sdkKeyVariables(provider: ProviderName): { key: string; others: readonly string[] } {
  return provider === 'anthropic' ? { key: 'ANTHROPIC_API_KEY', others: ['ANTHROPIC_AUTH_TOKEN'] } : { key: 'OPENAI_API_KEY', others: [] };
}
