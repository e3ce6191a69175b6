import type { Api } from './providers.ts';
import { createAnthropicReader } from './usage-anthropic.ts';
import { createOpenAiReader } from './usage-openai.ts';
import type { ReaderOptions, UsageReader } from './usage.ts';

/** A reader for the response shape of `api`. */
export function createUsageReader(api: Api, options: ReaderOptions): UsageReader {
  return api === 'anthropic.messages' ? createAnthropicReader(options) : createOpenAiReader(api, options);
}
