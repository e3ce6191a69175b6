/**
 * LLM egress: the agent's provider SDKs point their base URL at this listener
 * (ANTHROPIC_BASE_URL=http://127.0.0.1:8081/anthropic, OPENAI_BASE_URL=…/openai/v1), and
 * every call is forwarded to the provider unchanged while its tokens, cost, the provider's
 * remaining quota, the agent's budgets and a span are recorded.
 *
 * @example
 * const egress = createEgress(config, logger, { meter, tracer, agentType: 'support-agent' });
 * egress.server.listen(8081, '127.0.0.1');
 */
import type { Meter, Tracer } from '@opentelemetry/api';
import type { StoreClient } from '../stores/index.ts';
import { createLogAudit, type AuditSink } from '../audit/index.ts';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { createRpcClientTelemetry, type ToolCapture } from '../jsonrpc/index.ts';
import { componentLogger, type Logger } from '../log/index.ts';
import { createMemoryBudgetStore, createRedisBudgetStore } from './budget-store.ts';
import { createBudgets, type Budgets } from './budgets.ts';
import { createCapture, type ProtectText } from './capture.ts';
import { holdCredentials } from './credentials.ts';
import { createProviderDispatcher } from './dispatch.ts';
import { createLlmMetrics } from './metrics.ts';
import { createPeerHop } from './peer-hop.ts';
import { peersOf, type Peer } from './peers.ts';
import { createPriceBook } from './prices.ts';
import { providersOf, type Provider } from './providers.ts';
import { createRecorder } from './record.ts';
import { estimateUsage, type ProtectPrompt } from './request.ts';
import { createEgressServer, type EgressServer } from './server.ts';

export type { EgressServer } from './server.ts';

export { createPriceBook, costOf, type Cost, type PriceBook } from './prices.ts';
export { DEFAULT_PRICES, PRICES_AS_OF } from './price-table.ts';
export { createBudgets, windowOf, type Budgets, type BudgetStatus } from './budgets.ts';
export { createMemoryBudgetStore, createRedisBudgetStore, type BudgetStore } from './budget-store.ts';
export { createCapture, type Capture, type ProtectText } from './capture.ts';
export type { ProtectPrompt } from './request.ts';
export { type Usage, type UsageReader } from './usage.ts';
export { createUsageReader } from './usage-reader.ts';
export { SseFrames } from './sse-frames.ts';
export { KEY_PLACEHOLDER, quotaReadings, retryAfterSeconds, sdkBaseUrls, sdkKeyVariables, type Provider, type ProviderName } from './providers.ts';
export type { Peer } from './peers.ts';
export type { HeldCredential } from './credentials.ts';

export interface EgressOptions {
  /** Undefined when telemetry is off: calls are still forwarded, budgeted and logged. */
  meter?: Meter | undefined;
  tracer?: Tracer | undefined;
  /** The agent budgets belong to (telemetry.agentType) and the agent_type label. */
  agentType: string;
  /** The store shared with rate limits and revocation; memory without it. */
  redis?: StoreClient | undefined;
  /** mcp.capture: tool arguments and results on the spans of the agent's MCP calls, already protected; undefined when off. */
  toolCapture?: ToolCapture | undefined;
  /** Data protection for captured prompts and completions; capture refuses to start without it. */
  protectText?: ProtectText | undefined;
  /** Data protection of request bodies, for egress.protectPrompts (which refuses to start without it). */
  protectPrompt?: ProtectPrompt | undefined;
  env?: NodeJS.ProcessEnv;
  /** Where calls to MCP servers and A2A peers are audited; default: JSON lines through the logger. */
  audit?: AuditSink | undefined;
  /** False: provider credential files are read once and not watched (validate). Default: true. */
  watch?: boolean | undefined;
}

export interface Egress extends EgressServer {
  readonly providers: readonly Provider[];
  readonly peers: readonly Peer[];
  readonly budgets: Budgets;
  /** For the startup line: routes and budgets. */
  readonly describe: string;
  /** Re-reads the provider credential files (SIGHUP); a file that fails keeps the key in force. */
  reloadCredentials(): void;
  /** Closes the provider connections and stops watching credential files. */
  close(): Promise<void>;
}

export function createEgress(config: Readonly<SidecarConfig>, baseLogger: Logger, o: EgressOptions): Egress {
  const e = config.egress;
  const logger = componentLogger(baseLogger, 'agent-sidecar.egress');
  const capture = createCapture(e.capture, o.protectText);
  const metrics = o.meter === undefined ? undefined : createLlmMetrics(o.meter, o.agentType);
  const budgets = createBudgets({
    config: e.budgets,
    agentType: o.agentType,
    store: o.redis === undefined ? createMemoryBudgetStore() : createRedisBudgetStore(o.redis),
    logger: baseLogger,
    hooks: {
      status: (s) => metrics?.budget(s),
      refused: (s) => metrics?.budgetRefused(s),
      soft: (s) => metrics?.budgetSoft(s),
    },
  });
  const env = o.env ?? process.env;
  const credentials = holdCredentials(e, { env, logger, watch: o.watch !== false });
  const held = Object.values(credentials);
  const release = () => held.forEach((c) => c.close());
  const providers = providersOf(e, credentials);
  let dispatcher: ReturnType<typeof createProviderDispatcher>;
  try {
    dispatcher = createProviderDispatcher(e, env);
  } catch (err) {
    release();
    throw err;
  }
  const prices = createPriceBook(e.prices);
  const recorder = createRecorder({ metrics, tracer: o.tracer, logger, prices, capture });
  if (e.protectPrompts !== undefined && o.protectPrompt === undefined) {
    release();
    throw new SidecarError('SIDECAR_CONFIG_INVALID', { message: 'egress.protectPrompts names a rule set, but no data protection was given to apply it' });
  }
  const protectPrompt = e.protectPrompts === undefined ? undefined : o.protectPrompt;
  const peers = peersOf(e);
  const peerHop =
    peers.length === 0
      ? undefined
      : createPeerHop({
          dispatcher,
          audit: o.audit ?? createLogAudit(baseLogger),
          maxMessageBytes: config.mcp.maxMessageBytes,
          maxRequestBytes: e.maxRequestBytes,
          maxDepth: config.mcp.maxDepth,
          telemetry: createRpcClientTelemetry({
            meter: o.meter,
            tracer: o.tracer,
            agentType: o.agentType,
            maxAnswerBytes: config.mcp.maxMessageBytes,
            capture: o.toolCapture,
          }),
        });
  const server = createEgressServer({
    providers,
    dispatcher,
    recorder,
    budgets,
    estimate: (operation, request) =>
      request.model === undefined ? 0 : (prices.cost(request.model, estimateUsage(operation, request, e.budgets.estimate))?.total ?? 0),
    maxRequestBytes: e.maxRequestBytes,
    protectPrompt,
    timeouts: config.limits,
    logger,
    peers,
    peerHop,
  });
  const routes = [
    ...providers.map((p) => `${p.route} -> ${p.origin}${p.credential ? ` (credential from ${p.credential.source})` : ''}`),
    ...peers.map((p) => `${p.route} -> ${p.origin}`),
  ].join(', ');
  const budgetText = budgets.limits === 0 ? 'no budgets' : `${budgets.limits} budget${budgets.limits === 1 ? '' : 's'} (${o.redis ? 'redis' : 'memory'})`;
  return Object.assign(server, {
    providers,
    peers,
    budgets,
    describe: `${routes || 'no providers'}; ${budgetText}${protectPrompt ? `; prompts protected (${e.protectPrompts})` : ''}${capture ? '; capture on (protected)' : ''}`,
    reloadCredentials: () => held.forEach((c) => c.reload()),
    close: () => {
      release();
      return dispatcher.close();
    },
  });
}
