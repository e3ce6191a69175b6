import type { Attributes, Counter, Meter } from '@opentelemetry/api';
import { FIRST_CHUNK_BUCKETS, GEN_AI, GEN_AI_DURATION_BUCKETS, LLM_METRIC, TOKEN_BUCKETS } from '../telemetry/index.ts';
import type { BudgetStatus } from './budgets.ts';
import type { Cost } from './prices.ts';
import type { ProviderName, QuotaReading } from './providers.ts';
import { totalInput, type Usage } from './usage.ts';

/** One finished call as the metrics see it. */
export interface CallRecord {
  provider: ProviderName;
  operation: string;
  /** The model label: the model the agent asked for, else the one that answered. */
  model: string;
  responseModel: string | undefined;
  serverAddress: string;
  serverPort: number;
  usage: Usage | undefined;
  cost: Cost | undefined;
  seconds: number;
  firstChunkSeconds: number | undefined;
  /** complete | incomplete | error */
  outcome: string;
  errorType: string | undefined;
}

export interface LlmMetrics {
  call(r: CallRecord): void;
  quota(provider: ProviderName, model: string, readings: readonly QuotaReading[]): void;
  rateLimited(provider: ProviderName, model: string, retryAfter: number | undefined): void;
  budget(s: BudgetStatus): void;
  budgetRefused(s: BudgetStatus): void;
  budgetSoft(s: BudgetStatus): void;
}

const TOKEN_TYPES = [
  ['input', 'input'],
  ['output', 'output'],
  ['cacheRead', 'cache_read'],
  ['cacheWrite', 'cache_creation'],
] as const;

/**
 * The LLM instruments, recorded through the SDK's own: a call is a few milliseconds to minutes
 * long, so hashing attributes per record costs nothing next to it (unlike the per-request
 * HTTP instruments, which keep their own cells).
 */
export function createLlmMetrics(meter: Meter, agentType: string): LlmMetrics {
  const tokenUsage = meter.createHistogram(LLM_METRIC.tokenUsage, {
    unit: '{token}',
    description: 'Tokens per LLM call, by gen_ai.token.type: input (cached input included) and output.',
    advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
  });
  const duration = meter.createHistogram(LLM_METRIC.operationDuration, {
    unit: 's',
    description: 'Duration of LLM calls.',
    advice: { explicitBucketBoundaries: GEN_AI_DURATION_BUCKETS },
  });
  const firstChunk = meter.createHistogram(LLM_METRIC.timeToFirstChunk, {
    unit: 's',
    description: 'Time to the first chunk of a streamed LLM response.',
    advice: { explicitBucketBoundaries: FIRST_CHUNK_BUCKETS },
  });
  const tokens = meter.createCounter(LLM_METRIC.tokens, {
    unit: '{token}',
    description: 'LLM tokens by provider, model, token_type (input = uncached input, cache_read, cache_creation, output) and agent_type.',
  });
  const cost = meter.createCounter(LLM_METRIC.cost, {
    unit: '{USD}',
    description: 'LLM cost in USD from the price table, by provider, model, token_type and agent_type.',
  });
  const anthropicTokens = meter.createCounter(LLM_METRIC.anthropicTokens, {
    unit: '{token}',
    description: 'Anthropic tokens by agent_type, model and token_type.',
  });
  const anthropicCost = meter.createCounter(LLM_METRIC.anthropicCost, {
    unit: '{USD}',
    description: 'Anthropic cost in USD by agent_type, model and token_type.',
  });
  const requests = meter.createCounter(LLM_METRIC.requests, {
    unit: '{request}',
    description: 'LLM calls by provider, model, operation and outcome (complete, incomplete, error).',
  });
  const rateLimited = meter.createCounter(LLM_METRIC.rateLimited, { unit: '{request}', description: 'LLM calls the provider refused with 429.' });
  const retryAfter = meter.createGauge(LLM_METRIC.retryAfter, { unit: 's', description: 'Retry-After of the last 429 from the provider.' });
  const remaining = meter.createGauge(LLM_METRIC.quotaRemaining, {
    description: "Remaining capacity in the provider's rate-limit window, by limit_type (requests, tokens, input_tokens, output_tokens).",
  });
  const limit = meter.createGauge(LLM_METRIC.quotaLimit, { description: "The provider's rate limit, by limit_type." });
  const utilization = meter.createGauge(LLM_METRIC.quotaUtilization, {
    unit: '1',
    description: "Share of the provider's rate limit in use (1 - remaining / limit), 0 to 1.",
  });
  const budgetUse = meter.createGauge(LLM_METRIC.budgetUtilization, { unit: '1', description: 'Share of an LLM budget spent in its window.' });
  const budgetSpent = meter.createGauge(LLM_METRIC.budgetSpent, { unit: '{USD}', description: 'USD spent of an LLM budget in its window.' });
  const budgetLimit = meter.createGauge(LLM_METRIC.budgetLimit, { unit: '{USD}', description: 'The limit of an LLM budget.' });
  const refused: Counter = meter.createCounter(LLM_METRIC.budgetRefused, { unit: '{request}', description: 'LLM calls refused because a budget was spent.' });
  const softReached: Counter = meter.createCounter(LLM_METRIC.budgetSoftLimit, { description: 'LLM budgets that passed their soft limit.' });

  const budgetAttrs = (s: BudgetStatus): Attributes => ({ agent_type: agentType, scope: s.scope, window: s.window });
  return {
    call(r) {
      const semconv: Attributes = {
        [GEN_AI.operation]: r.operation,
        [GEN_AI.provider]: r.provider,
        [GEN_AI.requestModel]: r.model,
        'server.address': r.serverAddress,
        'server.port': r.serverPort,
      };
      if (r.responseModel !== undefined) semconv[GEN_AI.responseModel] = r.responseModel;
      duration.record(r.seconds, r.errorType === undefined ? semconv : { ...semconv, 'error.type': r.errorType });
      if (r.firstChunkSeconds !== undefined) firstChunk.record(r.firstChunkSeconds, semconv);
      requests.add(1, { provider: r.provider, model: r.model, operation: r.operation, outcome: r.outcome, agent_type: agentType });
      const u = r.usage;
      if (u === undefined) return;
      // The conventions define only input and output here; input includes cached input, so
      // cache types beside it would be counted twice by a sum. The split is in llm_tokens_total.
      tokenUsage.record(totalInput(u), { ...semconv, [GEN_AI.tokenType]: 'input' });
      tokenUsage.record(u.output, { ...semconv, [GEN_AI.tokenType]: 'output' });
      for (const [field, type] of TOKEN_TYPES) {
        const n = u[field];
        if (n === 0 && (type === 'cache_read' || type === 'cache_creation')) continue;
        const usd = r.cost?.[type];
        tokens.add(n, { provider: r.provider, model: r.model, token_type: type, agent_type: agentType });
        if (usd !== undefined) cost.add(usd, { provider: r.provider, model: r.model, token_type: type, agent_type: agentType });
        if (r.provider !== 'anthropic') continue;
        anthropicTokens.add(n, { agent_type: agentType, model: r.model, token_type: type });
        if (usd !== undefined) anthropicCost.add(usd, { agent_type: agentType, model: r.model, token_type: type });
      }
    },
    quota(provider, model, readings) {
      for (const q of readings) {
        const attrs = { provider, model, limit_type: q.limitType };
        if (q.remaining !== undefined) remaining.record(q.remaining, attrs);
        if (q.limit !== undefined) limit.record(q.limit, attrs);
        if (q.remaining !== undefined && q.limit !== undefined && q.limit > 0) utilization.record(clamp01(1 - q.remaining / q.limit), attrs);
      }
    },
    rateLimited(provider, model, seconds) {
      rateLimited.add(1, { provider, model, agent_type: agentType });
      if (seconds !== undefined) retryAfter.record(seconds, { provider, model });
    },
    budget(s) {
      const attrs = budgetAttrs(s);
      budgetUse.record(s.spentUsd / s.limitUsd, attrs);
      budgetSpent.record(s.spentUsd, attrs);
      budgetLimit.record(s.limitUsd, attrs);
    },
    budgetRefused: (s) => refused.add(1, budgetAttrs(s)),
    budgetSoft: (s) => softReached.add(1, budgetAttrs(s)),
  };
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
