import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { validateConfig } from '../src/config/index.ts';
import { createEgress } from '../src/egress/index.ts';
import { createLogger } from '../src/log/index.ts';
import { startRawServer, startServer, startSidecar } from './helpers.ts';
import { anthropicStream, startFakeProvider, type FakeProvider } from './fake-provider.ts';

let provider: FakeProvider;

beforeAll(async () => {
  provider = await startFakeProvider();
});

afterAll(async () => {
  await provider?.close();
});

/**
 * A forward proxy, as corporate egress proxies are: CONNECT tunnels (https:// targets) and
 * absolute-form requests (http:// targets), each recorded by the host it was for.
 */
async function startForwardProxy(): Promise<{ url: string; tunnels: string[]; close: () => Promise<void> }> {
  const tunnels: string[] = [];
  const server = http.createServer((req, res) => {
    const target = new URL(req.url ?? '');
    tunnels.push(target.host);
    const out = http.request(
      { host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    req.pipe(out);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tunnels,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe('the hop to the provider', () => {
  it('goes through HTTP_PROXY/HTTPS_PROXY when set, except for NO_PROXY hosts', async () => {
    const proxy = await startForwardProxy();
    const config = validateConfig({ egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } } } });
    const logger = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
    const target = new URL(provider.url).host;
    for (const [env, tunnelled] of [
      [{ HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url }, true],
      [{ HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' }, false],
    ] as const) {
      const egress = createEgress(config, logger, { agentType: 'proxied', env });
      egress.server.listen(0, '127.0.0.1');
      await once(egress.server, 'listening');
      try {
        const before = proxy.tunnels.length;
        provider.next({ json: { id: 'm', model: 'claude-haiku-4-5', usage: { input_tokens: 1, output_tokens: 1 } } });
        const res = await request(`http://127.0.0.1:${(egress.server.address() as AddressInfo).port}/anthropic/v1/messages`, {
          method: 'POST',
          body: '{"model":"claude-haiku-4-5"}',
        });
        expect(res.statusCode).toBe(200);
        expect(((await res.body.json()) as { id: string }).id).toBe('m');
        expect(proxy.tunnels.slice(before)).toEqual(tunnelled ? [target] : []);
      } finally {
        egress.stopAccepting();
        egress.destroyAll();
        await egress.close();
      }
    }
    await proxy.close();
  });

  it('stops the provider stream when the agent goes away, and records what arrived as incomplete', async () => {
    const s = await startSidecar({ egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } } } });
    try {
      // A long stream; the agent leaves after the first bytes.
      const events = anthropicStream({
        model: 'claude-sonnet-4-6',
        input: 50,
        cacheRead: 0,
        cacheWrite: 0,
        outputs: [5],
        text: Array.from({ length: 2000 }, () => 'word '),
      });
      provider.next({ events });
      const url = new URL(`${s.egressUrl}/anthropic/v1/messages`);
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false });
      req.end(JSON.stringify({ model: 'claude-sonnet-4-6', stream: true, max_tokens: 10, messages: [] }));
      const [res] = (await once(req, 'response')) as [http.IncomingMessage];
      await once(res, 'data');
      req.destroy();
      await expect
        .poll(() => s.logs.lines.find((l) => l.event_type === 'llm_call'))
        .toMatchObject({ outcome: 'incomplete', error_type: 'client_closed', input_tokens: 50 });
    } finally {
      await s.close();
    }
  });

  it('answers invalid HTTP from the provider with 502 SIDECAR_UPSTREAM_PROTOCOL_ERROR, as the ingress hop does', async () => {
    const answers: Record<string, string> = {
      'status-line': 'HTTX/9 abc\r\n\r\n',
      'status-above-599': 'HTTP/1.1 700 Odd\r\ncontent-length: 2\r\n\r\n{}',
      'nul-in-header': 'HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 2\r\n\r\n{}',
      'header-without-colon': 'HTTP/1.1 200 OK\r\nbroken\r\ncontent-length: 2\r\n\r\n{}',
      'header-too-long': `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(100_000)}\r\ncontent-length: 2\r\n\r\n{}`,
    };
    const raw = await startRawServer(
      (head) => answers[head.slice(head.indexOf('/v1/') + 4, head.indexOf(' HTTP/1.1'))] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n',
    );
    const s = await startSidecar({ egress: { allowHttp: true, providers: { openai: { origin: raw.url } } } });
    try {
      for (const name of Object.keys(answers)) {
        const res = await request(`${s.egressUrl}/openai/v1/${name}`, { method: 'POST', body: '{"model":"gpt-5.4"}' });
        expect([res.statusCode, ((await res.body.json()) as { error: { code: string } }).error.code], name).toEqual([502, 'SIDECAR_UPSTREAM_PROTOCOL_ERROR']);
      }
    } finally {
      await s.close();
      await raw.close();
    }
  });

  it('with telemetry off, passes the agent’s traceparent and tracestate to the provider as they came', async () => {
    const s = await startSidecar({ egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } } } });
    try {
      provider.next({ json: { id: 'msg_1', type: 'message', model: 'claude-sonnet-4-6', usage: { input_tokens: 3, output_tokens: 1 } } });
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const res = await request(`${s.egressUrl}/anthropic/v1/messages`, {
        method: 'POST',
        headers: { traceparent, tracestate: 'vendor=agent', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [] }),
      });
      await res.body.text();
      expect(provider.seen.at(-1)!.headers.traceparent).toBe(traceparent);
      expect(provider.seen.at(-1)!.headers.tracestate).toBe('vendor=agent');
    } finally {
      await s.close();
    }
  });

  it('answers Expect: 100-continue itself and never forwards Expect to the provider', async () => {
    const s = await startSidecar({ egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } } } });
    try {
      provider.next({ json: { id: 'msg_1', type: 'message', model: 'claude-sonnet-4-6', usage: { input_tokens: 3, output_tokens: 1 } } });
      const body = JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [] });
      const socket = net.connect(Number(new URL(s.egressUrl).port), '127.0.0.1');
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if (text === 'HTTP/1.1 100 Continue\r\n\r\n') socket.write(body);
      });
      socket.write(
        `POST /anthropic/v1/messages HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
      );
      await once(socket, 'close');
      expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ')).toBe(true);
      expect(provider.seen.at(-1)!.body).toBe(body);
      expect(provider.seen.at(-1)!.headers.expect).toBeUndefined();
    } finally {
      await s.close();
    }
  });

  it('keeps serving LLM calls while the ingress drains at shutdown, then stops', async () => {
    let release!: () => void;
    const slow = await startServer((_req, res) => {
      release = () => res.end('done');
    });
    const s = await startSidecar({ upstream: { url: slow.url }, egress: { allowHttp: true, providers: { anthropic: { origin: provider.url } } } });
    const inFlight = request(`${s.url}/slow`).then((r) => r.body.text());
    await expect.poll(() => typeof release).toBe('function');
    const stopping = s.close();
    provider.next({ json: { id: 'during-drain', model: 'claude-haiku-4-5', usage: { input_tokens: 1, output_tokens: 1 } } });
    const during = await request(`${s.egressUrl}/anthropic/v1/messages`, { method: 'POST', body: '{"model":"claude-haiku-4-5"}' });
    expect(((await during.body.json()) as { id: string }).id).toBe('during-drain');
    release();
    expect(await inFlight).toBe('done');
    await stopping;
    await expect(request(`${s.egressUrl}/anthropic/v1/messages`, { method: 'POST', body: '{}' })).rejects.toThrow();
    await slow.close();
  });

  it('protects prompts before they leave with egress.protectPrompts, and sends a prompt with nothing to protect byte for byte', async () => {
    const s = await startSidecar({
      egress: { allowHttp: true, providers: { openai: { origin: provider.url } }, protectPrompts: 'prompts' },
      protection: { rules: { prompts: { fields: [] } } },
    });
    try {
      const send = async (body: string) => {
        provider.next({ json: { id: 'c', model: 'gpt-5.4', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1 } } });
        const res = await request(`${s.egressUrl}/openai/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.body.text();
        return provider.seen.at(-1)!.body;
      };
      const dirty = await send(
        JSON.stringify({
          model: 'gpt-5.4',
          messages: [{ role: 'user', content: 'I am bob@example.com, card 4111 1111 1111 1111' }],
          tools: [{ type: 'function', function: { name: 'login', parameters: { properties: { password: { type: 'string' } } } } }],
        }),
      );
      expect(JSON.parse(dirty)).toEqual({
        model: 'gpt-5.4',
        messages: [{ role: 'user', content: 'I am [REDACTED:email], card [REDACTED:card]' }],
        tools: [{ type: 'function', function: { name: 'login', parameters: { properties: { password: { type: 'string' } } } } }],
      });
      const clean = '{ "model" : "gpt-5.4",\n  "messages": [{"role":"user","content":"hello"}] }';
      expect(await send(clean)).toBe(clean);
      await expect.poll(() => s.logs.lines.filter((l) => l.event_type === 'llm_call').map((l) => l.prompt_protected)).toEqual([true, undefined]);
    } finally {
      await s.close();
    }
  });
});
