// A stand-in LLM provider for the egress benchmark, run as its own process:
//   node bench/lib/llm-provider.ts <host:port> <bytes>
// Every POST answers an Anthropic Messages stream of about <bytes> bytes (text deltas of
// 64 characters, written eight events per chunk as a provider flushes tokens); GET answers 200.
import http from 'node:http';

const [address = '127.0.0.1:0', size = '1048576'] = process.argv.slice(2);
const i = address.lastIndexOf(':');
const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

function stream(bytes: number): { chunks: Buffer[]; outputTokens: number } {
  const head = sse('message_start', {
    type: 'message_start',
    message: {
      id: 'msg_bench',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-6',
      content: [],
      usage: { input_tokens: 1200, cache_read_input_tokens: 30000, cache_creation_input_tokens: 0, output_tokens: 1 },
    },
  });
  const delta = sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'x'.repeat(64) } });
  const events = [head, sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })];
  const n = Math.max(1, Math.floor(bytes / delta.length));
  for (let k = 0; k < n; k++) events.push(delta);
  events.push(sse('content_block_stop', { type: 'content_block_stop', index: 0 }));
  events.push(sse('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: n * 16 } }));
  events.push(sse('message_stop', { type: 'message_stop' }));
  const chunks: Buffer[] = [];
  for (let k = 0; k < events.length; k += 8) chunks.push(Buffer.from(events.slice(k, k + 8).join('')));
  return { chunks, outputTokens: n * 16 };
}

const { chunks, outputTokens } = stream(Number(size));
const server = http.createServer({ noDelay: true }, (req, res) => {
  req.resume();
  if (req.method !== 'POST') {
    res.end('ok');
    return;
  }
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-output-tokens': String(outputTokens) });
    let k = 0;
    const pump = () => {
      while (k < chunks.length) if (!res.write(chunks[k++])) return void res.once('drain', pump);
      res.end();
    };
    pump();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(address.slice(i + 1)), address.slice(0, i));
