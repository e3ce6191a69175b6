// CPU that reading usage costs per MB of a streamed completion, in isolation (no sockets): the
// response tee of the egress listener over an Anthropic stream and an OpenAI chat stream of 1 MB,
// in 8-event chunks. CPU time (process.cpuUsage), so that a busy machine skews it less than wall time.
// npm run bench:micro:egress
import { createTee } from '../../src/egress/tee.ts';
import { createUsageReader } from '../../src/egress/usage-reader.ts';
import type { Api } from '../../src/egress/providers.ts';

const sse = (event: string | undefined, data: unknown) => `${event === undefined ? '' : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`;
const MB = 1024 * 1024;

function anthropic(): string[] {
  const delta = sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'x'.repeat(64) } });
  const out = [
    sse('message_start', { type: 'message_start', message: { id: 'm', model: 'claude-sonnet-4-6', usage: { input_tokens: 10, output_tokens: 1 } } }),
  ];
  while (out.length * delta.length < MB) out.push(delta);
  return [...out, sse('message_delta', { type: 'message_delta', usage: { output_tokens: 9999 } }), sse('message_stop', { type: 'message_stop' })];
}

function openai(): string[] {
  const chunk = sse(undefined, {
    id: 'c',
    object: 'chat.completion.chunk',
    model: 'gpt-5.4',
    choices: [{ index: 0, delta: { content: 'x'.repeat(48) }, finish_reason: null }],
    usage: null,
  });
  const out: string[] = [];
  while (out.length * chunk.length < MB) out.push(chunk);
  return [...out, sse(undefined, { id: 'c', model: 'gpt-5.4', choices: [], usage: { prompt_tokens: 10, completion_tokens: 9999 } }), 'data: [DONE]\n\n'];
}

/** `read`: undefined for the provider's writes (8 events each), or a byte count: the socket reads the hop hands over (64 KiB). */
async function measure(label: string, api: Api, events: string[], read?: number): Promise<void> {
  let chunks: Buffer[] = [];
  for (let k = 0; k < events.length; k += 8) chunks.push(Buffer.from(events.slice(k, k + 8).join('')));
  if (read !== undefined) {
    const all = Buffer.concat(chunks);
    chunks = [];
    for (let k = 0; k < all.length; k += read) chunks.push(all.subarray(k, k + read));
  }
  const once = async () => {
    const reader = createUsageReader(api, { captureText: false, maxChars: 0, addedUsage: false });
    const tee = createTee({ 'content-type': 'text/event-stream' }, reader, false, (what) => {
      throw new Error(what);
    });
    for (const c of chunks) tee.push(c);
    await tee.end().read;
    if (reader.state.usage?.output !== 9999) throw new Error(`${label}: usage not read`);
  };
  for (let i = 0; i < 30; i++) await once();
  const n = 200;
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) await once();
  const used = process.cpuUsage(before);
  process.stdout.write(`${label}: ${((used.user + used.system) / n / 1000).toFixed(2)} ms CPU per MB (${chunks.length} chunks, ${events.length} events)\n`);
}

await measure('Anthropic Messages stream, in writes of 8 events', 'anthropic.messages', anthropic());
await measure('Anthropic Messages stream, in reads of 64 KiB', 'anthropic.messages', anthropic(), 64 * 1024);
await measure('OpenAI Chat Completions stream, in writes of 8 events', 'openai.chat', openai());
await measure('OpenAI Chat Completions stream, in reads of 64 KiB', 'openai.chat', openai(), 64 * 1024);
