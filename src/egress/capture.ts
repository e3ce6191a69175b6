import type { EgressConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { protectThenCut, type ProtectText } from '../protect/index.ts';
import type { Api } from './providers.ts';

export type { ProtectText };

/** Prompt and completion capture onto LLM spans. Every captured text goes through `protect` first. */
export interface Capture {
  readonly prompts: boolean;
  readonly completions: boolean;
  readonly maxChars: number;
  /** gen_ai.input.messages: the prompt parts of a request body, protected, then cut to maxChars. */
  prompt(api: Api, body: Record<string, unknown>): string;
  /** gen_ai.output.messages: the completion text, protected, then cut to maxChars. */
  completion(text: string): string;
}

/**
 * Capture is off unless egress.capture asks for it, and then only through data protection: a
 * prompt is the likeliest place for a customer's personal data, and a span is exported to
 * systems with wider access than the provider's. Without `protect` (protection.telemetry
 * off) an enabled capture stops the start with SIDECAR_CONFIG_INVALID rather than export raw
 * text.
 */
export function createCapture(config: EgressConfig['capture'], protect: ProtectText | undefined): Capture | undefined {
  if (!config.prompts && !config.completions) return undefined;
  if (protect === undefined) throw unprotected();
  const { maxChars } = config;
  const guard = protectThenCut(protect, maxChars);
  return {
    prompts: config.prompts,
    completions: config.completions,
    maxChars,
    prompt(api, body) {
      return guard(JSON.stringify(promptParts(api, body)));
    },
    completion(text) {
      return guard(JSON.stringify([{ role: 'assistant', parts: [{ type: 'text', content: text }] }]));
    },
  };
}

/** The parts of a request that make up the prompt, in the provider's own shape. */
function promptParts(api: Api, body: Record<string, unknown>): unknown {
  switch (api) {
    case 'anthropic.messages':
      return body.system === undefined ? body.messages : [{ role: 'system', content: body.system }, ...(Array.isArray(body.messages) ? body.messages : [])];
    case 'openai.chat':
      return body.messages;
    case 'openai.responses':
      return body.instructions === undefined
        ? body.input
        : [
            { role: 'system', content: body.instructions },
            { role: 'user', content: body.input },
          ];
    case 'openai.completions':
      return [{ role: 'user', content: body.prompt }];
    case 'openai.embeddings':
      return [{ role: 'user', content: body.input }];
  }
}

function unprotected(): SidecarError {
  return new SidecarError('SIDECAR_CONFIG_INVALID', {
    message:
      'egress.capture.prompts and .completions need data protection of telemetry (protection.telemetry.enabled), which is off; turn capture off or protection on',
  });
}
