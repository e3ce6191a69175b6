// What the usage readers share: the shapes, the state and the JSON helpers. The reader for a
// response's API is picked in usage-reader.ts, so that the readers import this file and
// nothing imports them back.

/**
 * Tokens of one call, split so that each kind has one price and the kinds add up to what was
 * billed: `input` is uncached input only (Anthropic's input_tokens; OpenAI's prompt tokens less
 * the cached ones), `cacheRead` what the prompt cache served, `cacheWrite` what was written
 * to it (of which `cacheWrite1h` to Anthropic's 1-hour cache).
 */
export interface Usage {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  cacheWrite1h: number;
}

export const emptyUsage = (): Usage => ({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0, cacheWrite1h: 0 });

/** Input tokens as the GenAI conventions count them (gen_ai.usage.input_tokens): cached ones included. */
export const totalInput = (u: Usage): number => u.input + u.cacheRead + u.cacheWrite;

/** What a response said about the call, as far as it was read. */
export interface ReadState {
  /** Undefined while no usage was seen. */
  usage: Usage | undefined;
  responseModel: string | undefined;
  responseId: string | undefined;
  finishReasons: string[];
  /** The provider's end of a response was seen (message_stop, [DONE], response.completed or a whole JSON body). */
  finished: boolean;
  /** An error the provider reported inside a successful response (a stream's `error` event, response.failed). */
  errorType: string | undefined;
  /** The completion's text, when it is captured. */
  text: string;
}

export interface UsageReader {
  readonly state: ReadState;
  /**
   * One server-sent event. Returns true for the usage chunk that only the sidecar asked for
   * (OpenAI stream_options.include_usage added to the request), which the agent is spared.
   */
  event(type: string | undefined, data: string): boolean;
  /** A whole JSON response body, parsed. */
  json(body: unknown): void;
}

export interface ReaderOptions {
  /** Keep the completion's text (capture is on). */
  captureText: boolean;
  maxChars: number;
  /** The sidecar added include_usage: the usage-only chunk is not the agent's. */
  addedUsage: boolean;
}

export function newState(): ReadState {
  return { usage: undefined, responseModel: undefined, responseId: undefined, finishReasons: [], finished: false, errorType: undefined, text: '' };
}

/** JSON.parse that yields undefined for what is not a JSON object. */
export function parseObject(data: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(data);
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A non-negative integer token count, or undefined. */
export function tokens(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined;
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Appends captured text up to the limit. */
export function appendText(state: ReadState, text: unknown, max: number): void {
  if (typeof text !== 'string' || state.text.length >= max) return;
  state.text += text.length + state.text.length > max ? text.slice(0, max - state.text.length) : text;
}
