import type { IncomingHttpHeaders } from 'node:http';
import { SpanKind, SpanStatusCode, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import type { SidecarError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { callerContext, GEN_AI, traceHeadersOf } from '../telemetry/index.ts';
import type { Reservation } from './budgets.ts';
import type { Capture } from './capture.ts';
import type { CallHooks } from './dispatch.ts';
import type { LlmMetrics } from './metrics.ts';
import type { Cost, PriceBook } from './prices.ts';
import { quotaReadings, retryAfterSeconds, type Operation, type Provider } from './providers.ts';
import type { LlmRequest } from './request.ts';
import { createTee } from './tee.ts';
import { createUsageReader } from './usage-reader.ts';
import { totalInput, type UsageReader } from './usage.ts';

export interface RecorderOptions {
  metrics: LlmMetrics | undefined;
  tracer: Tracer | undefined;
  logger: Logger;
  prices: PriceBook;
  capture: Capture | undefined;
}

export interface Recorder {
  /** A metered call is about to be sent: its span starts (a child of the agent's traceparent, if any), and names itself in the call's traceparent. */
  start(provider: Provider, operation: Operation, request: LlmRequest, headers: IncomingHttpHeaders, reservation: Reservation): CallHooks;
  /** A metered call the sidecar refused before sending (budget spent, store down). */
  refused(provider: Provider, operation: Operation, model: string | undefined, err: SidecarError): void;
}

const MAX_MODEL_LABELS = 200;

/**
 * Everything a call leaves behind when it ends: metrics, the span, one `llm_call` log line
 * and the budget's settlement. Tokens and cost come from what the response said, also when it was
 * cut short: the call is then recorded as `incomplete`.
 */
export function createRecorder(o: RecorderOptions): Recorder {
  const { metrics, tracer, logger, prices, capture } = o;
  const unpriced = new Set<string>();
  // The model label comes from the agent's request: bounded, so that a stream of made-up
  // model names cannot grow the metric series without end (logs and spans keep the real one).
  const labels = new Set<string>();
  const labelOf = (model: string) => {
    if (labels.has(model)) return model;
    if (labels.size >= MAX_MODEL_LABELS) return 'other';
    labels.add(model);
    return model;
  };

  function start(provider: Provider, operation: Operation, request: LlmRequest, headers: IncomingHttpHeaders, reservation: Reservation): CallHooks {
    const startedAt = process.hrtime.bigint();
    let firstAt: bigint | undefined;
    let status: number | undefined;
    let providerRequestId: string | undefined;
    const reader: UsageReader = createUsageReader(operation.api, {
      captureText: capture?.completions === true,
      maxChars: capture?.maxChars ?? 0,
      addedUsage: request.addedUsage,
    });
    const model = request.model;
    const span = startSpan(provider, operation, request, headers);

    return {
      traceHeaders: traceHeadersOf(span),
      tee(s, h) {
        if (s < 200 || s >= 300) return undefined;
        return createTee(h, reader, request.addedUsage, (what) =>
          logger.warn({ event_type: 'llm_call_unreadable', provider: provider.name, model, what }, `LLM response not read for usage: ${what}`),
        );
      },
      response(s, h) {
        status = s;
        providerRequestId = header(h['request-id']) ?? header(h['x-request-id']);
        const label = labelOf(model ?? 'unknown');
        metrics?.quota(provider.name, label, quotaReadings(provider.name, h));
        if (s === 429) metrics?.rateLimited(provider.name, label, retryAfterSeconds(h['retry-after']));
      },
      firstChunk() {
        firstAt ??= process.hrtime.bigint();
      },
      end({ cut, error, clientGone }) {
        const st = reader.state;
        const label = model ?? st.responseModel ?? 'unknown';
        const usage = st.usage;
        const cost = usage === undefined ? undefined : (prices.cost(st.responseModel ?? label, usage) ?? prices.cost(label, usage));
        // First, before anything that could throw: a call cut short settles what its usage says it used.
        reservation.settle(cost?.total ?? 0);
        if (usage !== undefined && cost === undefined && !unpriced.has(label) && unpriced.size < 1000) {
          unpriced.add(label);
          logger.warn(
            { event_type: 'llm_unpriced_model', provider: provider.name, model: label },
            `no price for model ${label}: its tokens are counted, its cost and budget spend are not (egress.prices)`,
          );
        }
        const failed = error !== undefined || status === undefined || status >= 400 || st.errorType !== undefined;
        const incomplete = !failed && (cut || !st.finished);
        const outcome = failed && !cut ? 'error' : incomplete || cut ? 'incomplete' : 'complete';
        const errorType =
          error?.code ??
          (clientGone ? 'client_closed' : undefined) ??
          st.errorType ??
          (status !== undefined && status >= 400 ? String(status) : incomplete || cut ? 'stream_incomplete' : undefined);
        const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
        const firstChunkSeconds = firstAt === undefined || !request.stream ? undefined : Number(firstAt - startedAt) / 1e9;
        metrics?.call({
          provider: provider.name,
          operation: operation.name,
          model: labelOf(label),
          responseModel: st.responseModel,
          serverAddress: provider.host.replace(/:\d+$/, ''),
          serverPort: provider.port,
          usage,
          cost,
          seconds,
          firstChunkSeconds,
          outcome,
          errorType,
        });
        if (span !== undefined) endSpan(span, { status, errorType, outcome, cost, reader, incomplete: outcome === 'incomplete' });
        const sc = span?.spanContext();
        logger.info(
          {
            event_type: 'llm_call',
            provider: provider.name,
            operation: operation.name,
            model: label,
            response_model: st.responseModel,
            status_code: status,
            outcome,
            error_type: errorType,
            duration_ms: Math.round(seconds * 1e6) / 1e3,
            first_chunk_ms: firstChunkSeconds === undefined ? undefined : Math.round(firstChunkSeconds * 1e6) / 1e3,
            input_tokens: usage?.input,
            output_tokens: usage?.output,
            cache_read_tokens: usage?.cacheRead,
            cache_creation_tokens: usage?.cacheWrite,
            cost_usd: cost === undefined ? undefined : Math.round(cost.total * 1e9) / 1e9,
            provider_request_id: providerRequestId,
            prompt_protected: request.protected || undefined,
            trace_id: sc?.traceId,
            span_id: sc?.spanId,
          },
          `${operation.name} ${label} ${status ?? '-'} ${outcome}`,
        );
      },
    };
  }

  function startSpan(provider: Provider, operation: Operation, request: LlmRequest, headers: IncomingHttpHeaders): Span | undefined {
    if (tracer === undefined) return undefined;
    const parent = callerContext(headers);
    const attributes: Attributes = {
      [GEN_AI.operation]: operation.name,
      [GEN_AI.provider]: provider.name,
      'server.address': provider.host.replace(/:\d+$/, ''),
      'server.port': provider.port,
    };
    if (request.model !== undefined) attributes[GEN_AI.requestModel] = request.model;
    const j = request.json;
    const maxTokens = j?.max_tokens ?? j?.max_completion_tokens ?? j?.max_output_tokens;
    if (typeof maxTokens === 'number') attributes[GEN_AI.requestMaxTokens] = maxTokens;
    if (typeof j?.temperature === 'number') attributes[GEN_AI.requestTemperature] = j.temperature;
    const span = tracer.startSpan(`${operation.name} ${request.model ?? 'unknown'}`, { kind: SpanKind.CLIENT, attributes }, parent);
    if (capture?.prompts && j !== undefined && span.isRecording()) span.setAttribute(GEN_AI.inputMessages, capture.prompt(operation.api, j));
    return span;
  }

  function endSpan(
    span: Span,
    r: { status: number | undefined; errorType: string | undefined; outcome: string; cost: Cost | undefined; reader: UsageReader; incomplete: boolean },
  ): void {
    if (span.isRecording()) {
      const st = r.reader.state;
      const a: Attributes = {};
      if (r.status !== undefined) a['http.response.status_code'] = r.status;
      if (st.responseModel !== undefined) a[GEN_AI.responseModel] = st.responseModel;
      if (st.responseId !== undefined) a[GEN_AI.responseId] = st.responseId;
      if (st.finishReasons.length > 0) a[GEN_AI.finishReasons] = st.finishReasons;
      if (st.usage !== undefined) {
        a[GEN_AI.inputTokens] = totalInput(st.usage);
        a[GEN_AI.outputTokens] = st.usage.output;
        a[GEN_AI.cacheReadTokens] = st.usage.cacheRead;
        a[GEN_AI.cacheCreationTokens] = st.usage.cacheWrite;
      }
      if (r.cost !== undefined) a[GEN_AI.cost] = r.cost.total;
      if (r.incomplete) a[GEN_AI.incomplete] = true;
      if (r.errorType !== undefined) a['error.type'] = r.errorType;
      if (capture?.completions && st.text !== '') a[GEN_AI.outputMessages] = capture.completion(st.text);
      span.setAttributes(a);
      if (r.outcome !== 'complete') span.setStatus({ code: SpanStatusCode.ERROR, message: r.errorType });
    }
    span.end();
  }

  return {
    start,
    refused(provider, operation, model, err) {
      logger.warn(
        {
          event_type: 'llm_call',
          provider: provider.name,
          operation: operation.name,
          model: model ?? 'unknown',
          status_code: err.status,
          outcome: 'refused',
          error_type: err.code,
        },
        `${operation.name} ${model ?? 'unknown'} refused: ${err.code}`,
      );
    },
  };
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
