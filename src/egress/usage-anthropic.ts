import { appendText, emptyUsage, isObject, newState, parseObject, str, tokens, type ReaderOptions, type ReadState, type UsageReader } from './usage.ts';

/**
 * The Anthropic Messages API. Streamed, `message_start` carries the input usage (and an early
 * output count), then `message_delta` carries usage again, cumulatively: each field present
 * replaces the one before, never adds to it (a parser that adds counts output twice, one that
 * keeps only output_tokens from message_delta loses cache tokens that arrive there). Cache
 * reads and writes are their own fields, never part of input_tokens; a write splits into the
 * 5-minute and 1-hour caches in `cache_creation`, priced apart.
 */
export function createAnthropicReader(options: ReaderOptions): UsageReader {
  const state = newState();
  return {
    state,
    event(type, data) {
      // Every Anthropic event names its type twice; the `event:` line saves a parse of text deltas.
      const kind = type ?? str(parseObject(data)?.type);
      switch (kind) {
        case 'message_start': {
          const message = parseObject(data)?.message;
          if (!isObject(message)) break;
          state.responseModel = str(message.model) ?? state.responseModel;
          state.responseId = str(message.id) ?? state.responseId;
          applyUsage(state, message.usage);
          break;
        }
        case 'message_delta': {
          const d = parseObject(data);
          if (d === undefined) break;
          applyUsage(state, d.usage);
          const stop = isObject(d.delta) ? str(d.delta.stop_reason) : undefined;
          if (stop !== undefined) state.finishReasons = [stop];
          break;
        }
        case 'message_stop':
          state.finished = true;
          break;
        case 'content_block_delta': {
          if (!options.captureText) break;
          const delta = parseObject(data)?.delta;
          if (isObject(delta) && delta.type === 'text_delta') appendText(state, delta.text, options.maxChars);
          break;
        }
        case 'error': {
          const e = parseObject(data)?.error;
          state.errorType = (isObject(e) ? str(e.type) : undefined) ?? 'error';
          break;
        }
      }
      return false;
    },
    json(body) {
      if (!isObject(body)) return;
      state.responseModel = str(body.model);
      state.responseId = str(body.id);
      applyUsage(state, body.usage);
      const stop = str(body.stop_reason);
      if (stop !== undefined) state.finishReasons = [stop];
      if (options.captureText && Array.isArray(body.content)) {
        for (const block of body.content) if (isObject(block) && block.type === 'text') appendText(state, block.text, options.maxChars);
      }
      state.finished = true;
    },
  };
}

/** Each field present replaces the previous value (cumulative usage). */
function applyUsage(state: ReadState, raw: unknown): void {
  if (!isObject(raw)) return;
  const u = (state.usage ??= emptyUsage());
  u.input = tokens(raw.input_tokens) ?? u.input;
  u.output = tokens(raw.output_tokens) ?? u.output;
  u.cacheRead = tokens(raw.cache_read_input_tokens) ?? u.cacheRead;
  const split = isObject(raw.cache_creation) ? raw.cache_creation : undefined;
  const oneHour = tokens(split?.ephemeral_1h_input_tokens);
  const fiveMinutes = tokens(split?.ephemeral_5m_input_tokens);
  u.cacheWrite = tokens(raw.cache_creation_input_tokens) ?? (split === undefined ? u.cacheWrite : (fiveMinutes ?? 0) + (oneHour ?? 0));
  if (oneHour !== undefined) u.cacheWrite1h = Math.min(oneHour, u.cacheWrite);
}
