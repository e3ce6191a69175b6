import type { IncomingMessage } from 'node:http';
import { SidecarError } from '../errors/index.ts';
import type { Operation, Provider } from './providers.ts';
import { emptyUsage, isObject, str, type Usage } from './usage.ts';

/** A metered request, read whole: the model decides the budget before anything is sent. */
export interface LlmRequest {
  /** The bytes the provider gets: the agent's, unless include_usage was added. */
  body: Buffer;
  /** The body as JSON, when it is a JSON object. */
  json: Record<string, unknown> | undefined;
  model: string | undefined;
  stream: boolean;
  /** stream_options.include_usage was added by the sidecar (OpenAI Chat Completions). */
  addedUsage: boolean;
  /** Data protection changed the prompt (egress.protectPrompts). */
  protected: boolean;
}

/** Data protection of a parsed request body: the same object when nothing needs protecting. */
export type ProtectPrompt = (body: Record<string, unknown>) => unknown;

const INCLUDE_USAGE = Buffer.from('"stream_options":{"include_usage":true},');

/** Reads a request body of at most `max` bytes; past it, SIDECAR_BODY_TOO_LARGE (413). */
export async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max)
    throw new SidecarError('SIDECAR_BODY_TOO_LARGE', { message: 'The request body is larger than egress.maxRequestBytes allows.' });
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw new SidecarError('SIDECAR_BODY_TOO_LARGE', { message: 'The request body is larger than egress.maxRequestBytes allows.' });
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof SidecarError) throw err;
    throw new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'The request body ended early or failed.', cause: err });
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/**
 * What the call asks for. A body that is not JSON goes to the provider as it is (the provider
 * answers 400). Two changes are ever made to a request body: with egress.protectPrompts, a
 * prompt that carries something protected is protected and re-serialized; with OpenAI's
 * include_usage on, a streamed Chat Completions request without stream_options gets
 * `"stream_options":{"include_usage":true}` inserted after its opening brace (without it a
 * streamed call reports no usage at all).
 */
export function inspectRequest(provider: Provider, operation: Operation, raw: Buffer, protect?: ProtectPrompt): LlmRequest {
  let json: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(raw.toString('utf8'));
    json = isObject(v) ? v : undefined;
  } catch {
    json = undefined;
  }
  const model = str(json?.model);
  let changed = false;
  if (protect !== undefined && json !== undefined) {
    const out = protect(json);
    if (out !== json && isObject(out)) {
      // Copy on write: only a prompt that carried something protected is re-serialized.
      raw = Buffer.from(JSON.stringify(out));
      json = out;
      changed = true;
    }
  }
  const stream = json?.stream === true;
  const add =
    provider.includeUsage &&
    stream &&
    json !== undefined &&
    !('stream_options' in json) &&
    (operation.api === 'openai.chat' || operation.api === 'openai.completions');
  let body = raw;
  if (add) {
    const brace = raw.indexOf(0x7b);
    body = Buffer.concat([raw.subarray(0, brace + 1), INCLUDE_USAGE, raw.subarray(brace + 1)]);
  }
  return { body, json, model, stream, addedUsage: add, protected: changed };
}

/** What a call's estimate is made of (egress.budgets.estimate). */
export interface EstimateSettings {
  /** Output tokens assumed for a request that names no maximum. */
  outputTokens: number;
  /** Request bytes per input token: the prompt's tokens are counted from its size. */
  bytesPerToken: number;
}

/**
 * The tokens a call may use at most, as far as its request says: its maximum output
 * (max_tokens, max_completion_tokens, max_output_tokens; `outputTokens` when it names none;
 * none for embeddings), and its whole body's bytes as input tokens, which overcounts (JSON,
 * cached input priced as fresh), so that the estimate errs high.
 */
export function estimateUsage(operation: Operation, request: LlmRequest, settings: EstimateSettings): Usage {
  const j = request.json;
  const named = [j?.max_tokens, j?.max_completion_tokens, j?.max_output_tokens].find((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0) as
    number | undefined;
  const output = operation.api === 'openai.embeddings' ? 0 : (named ?? settings.outputTokens);
  return { ...emptyUsage(), input: Math.ceil(request.body.length / settings.bytesPerToken), output };
}
