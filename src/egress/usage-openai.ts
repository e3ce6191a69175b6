import type { Api } from './providers.ts';
import { appendText, emptyUsage, isObject, newState, parseObject, str, tokens, type ReaderOptions, type ReadState, type UsageReader } from './usage.ts';

// A chunk worth parsing beyond the first: one with usage or a finish reason.
const USAGE = /"usage"\s*:\s*\{/;
const FINISH = /"finish_reason"\s*:\s*"/;

/**
 * The OpenAI APIs. Chat Completions (and legacy Completions) stream usage only when asked
 * (`stream_options.include_usage`), in one chunk before `[DONE]`, usually with `choices: []`;
 * the other chunks carry `usage: null`. prompt_tokens includes the cached ones
 * (prompt_tokens_details.cached_tokens). The Responses API streams typed events and reports
 * usage once, on response.completed (or .incomplete, .failed), with input_tokens likewise
 * including input_tokens_details.cached_tokens. Reasoning tokens are part of the output count.
 */
export function createOpenAiReader(api: Api, options: ReaderOptions): UsageReader {
  const state = newState();
  if (api === 'openai.responses') return responsesReader(state, options);
  const textOf =
    api === 'openai.completions' ? (c: Record<string, unknown>) => c.text : (c: Record<string, unknown>) => (isObject(c.delta) ? c.delta.content : undefined);
  return {
    state,
    event(_type, data) {
      if (data === '[DONE]') {
        state.finished = true;
        return false;
      }
      if (state.responseModel !== undefined && !options.captureText && !USAGE.test(data) && !FINISH.test(data)) return false;
      const chunk = parseObject(data);
      if (chunk === undefined) return false;
      state.responseModel ??= str(chunk.model);
      state.responseId ??= str(chunk.id);
      const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
      for (const c of choices) {
        if (!isObject(c)) continue;
        const reason = str(c.finish_reason);
        if (reason !== undefined) state.finishReasons.push(reason);
        if (options.captureText) appendText(state, textOf(c), options.maxChars);
      }
      if (!isObject(chunk.usage)) return false;
      applyPromptUsage(state, chunk.usage);
      return options.addedUsage && choices.length === 0;
    },
    json(body) {
      if (!isObject(body)) return;
      state.responseModel = str(body.model);
      state.responseId = str(body.id);
      if (isObject(body.usage)) applyPromptUsage(state, body.usage);
      if (Array.isArray(body.choices)) {
        for (const c of body.choices) {
          if (!isObject(c)) continue;
          const reason = str(c.finish_reason);
          if (reason !== undefined) state.finishReasons.push(reason);
          if (options.captureText)
            appendText(state, api === 'openai.completions' ? c.text : isObject(c.message) ? c.message.content : undefined, options.maxChars);
        }
      }
      state.finished = true;
    },
  };
}

function responsesReader(state: ReadState, options: ReaderOptions): UsageReader {
  const readResponse = (r: unknown) => {
    if (!isObject(r)) return;
    state.responseModel = str(r.model) ?? state.responseModel;
    state.responseId = str(r.id) ?? state.responseId;
    if (isObject(r.usage)) {
      const u = r.usage;
      const cached = tokens(isObject(u.input_tokens_details) ? u.input_tokens_details.cached_tokens : undefined) ?? 0;
      const input = tokens(u.input_tokens) ?? 0;
      state.usage = { ...emptyUsage(), input: Math.max(0, input - cached), cacheRead: Math.min(cached, input), output: tokens(u.output_tokens) ?? 0 };
    }
    const status = str(r.status);
    if (status !== undefined && status !== 'in_progress')
      state.finishReasons = [status === 'incomplete' && isObject(r.incomplete_details) ? (str(r.incomplete_details.reason) ?? status) : status];
    if (status === 'failed') state.errorType = (isObject(r.error) ? str(r.error.code) : undefined) ?? 'response_failed';
  };
  return {
    state,
    event(type, data) {
      const kind = type ?? str(parseObject(data)?.type);
      switch (kind) {
        case 'response.created':
          readResponse(parseObject(data)?.response);
          break;
        case 'response.output_text.delta':
          if (options.captureText) appendText(state, parseObject(data)?.delta, options.maxChars);
          break;
        case 'response.completed':
        case 'response.incomplete':
        case 'response.failed':
          readResponse(parseObject(data)?.response);
          state.finished = true;
          break;
        case 'error':
          state.errorType = str(parseObject(data)?.code) ?? 'error';
          break;
      }
      return false;
    },
    json(body) {
      readResponse(body);
      if (options.captureText && isObject(body) && Array.isArray(body.output)) {
        for (const item of body.output) {
          if (!isObject(item) || !Array.isArray(item.content)) continue;
          for (const part of item.content) if (isObject(part) && part.type === 'output_text') appendText(state, part.text, options.maxChars);
        }
      }
      state.finished = true;
    },
  };
}

/** Chat Completions, Completions and Embeddings usage: prompt_tokens includes the cached ones. */
function applyPromptUsage(state: ReadState, u: Record<string, unknown>): void {
  const prompt = tokens(u.prompt_tokens) ?? 0;
  const cached = tokens(isObject(u.prompt_tokens_details) ? u.prompt_tokens_details.cached_tokens : undefined) ?? 0;
  state.usage = { ...emptyUsage(), input: Math.max(0, prompt - cached), cacheRead: Math.min(cached, prompt), output: tokens(u.completion_tokens) ?? 0 };
}
