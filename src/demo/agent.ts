import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

interface Agent {
  agent_id: string;
  name: string;
  model: string;
  created_at: string;
}

/**
 * A small stand-in for an agent service: the reference design's routes, an SSE chat
 * endpoint, and a health check. It knows nothing about the sidecar in front of it.
 */
export function createDemoAgent(options: { tokenDelayMs?: number } = {}): http.Server {
  const delay = options.tokenDelayMs ?? 40;
  const agents = new Map<string, Agent>();
  const seed: Agent = { agent_id: 'research', name: 'Research assistant', model: 'claude-sonnet-4-5', created_at: new Date().toISOString() };
  agents.set(seed.agent_id, seed);
  const conversations = [{ conversation_id: 'c-1', agent_id: 'research', messages: 2 }];
  let served = 0;

  return http.createServer((req, res) => {
    served++;
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const parts = path.split('/').filter(Boolean);
    if (path === '/health') return json(res, 200, { status: 'ok' });
    if (path === '/api/v1/agents') {
      if (req.method === 'GET') return json(res, 200, { agents: [...agents.values()] });
      if (req.method === 'POST') {
        return void readJson(req).then(
          (body) => {
            const agent: Agent = {
              agent_id: randomUUID(),
              name: String(body.name ?? 'unnamed'),
              model: String(body.model ?? 'claude-sonnet-4-5'),
              created_at: new Date().toISOString(),
            };
            agents.set(agent.agent_id, agent);
            json(res, 201, agent);
          },
          () => json(res, 400, { detail: 'body must be JSON' }),
        );
      }
    }
    if (parts.length === 4 && path.startsWith('/api/v1/agents/')) {
      const id = decodeURIComponent(parts[3]!);
      const agent = agents.get(id);
      if (agent === undefined) return json(res, 404, { detail: `no agent ${id}` });
      if (req.method === 'GET') return json(res, 200, agent);
      if (req.method === 'DELETE') {
        agents.delete(id);
        res.writeHead(204).end();
        return;
      }
      if (req.method === 'PUT') {
        return void readJson(req).then(
          (body) => {
            Object.assign(agent, { name: body.name ?? agent.name, model: body.model ?? agent.model });
            json(res, 200, agent);
          },
          () => json(res, 400, { detail: 'body must be JSON' }),
        );
      }
    }
    if (path === '/api/v1/conversations' && req.method === 'GET') return json(res, 200, { conversations });
    if (path === '/api/v1/metrics' && req.method === 'GET') return json(res, 200, { agents: agents.size, requests_served: served });
    if (path === '/api/v1/chat' && req.method === 'POST')
      return void readJson(req).then(
        (body) => streamAnswer(res, String(body.message ?? ''), delay),
        () => json(res, 400, { detail: 'body must be JSON' }),
      );
    json(res, 404, { detail: 'not found' });
  });
}

/** Streams a canned answer word by word as server-sent events, like an LLM-backed agent. */
function streamAnswer(res: ServerResponse, message: string, delay: number): void {
  const words = `You asked: "${message.slice(0, 80)}". The sidecar in front of me streamed this answer to you event by event, without buffering it.`.split(' ');
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let i = 0;
  const timer = setInterval(() => {
    if (i < words.length) {
      res.write(`event: token\ndata: ${JSON.stringify({ index: i, text: `${words[i]} ` })}\n\n`);
      i++;
      return;
    }
    clearInterval(timer);
    res.end(`event: done\ndata: ${JSON.stringify({ tokens: words.length })}\n\n`);
  }, delay);
  res.once('close', () => clearInterval(timer));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  const value: unknown = text === '' ? {} : JSON.parse(text);
  if (value === null || typeof value !== 'object') throw new Error('not an object');
  return value as Record<string, unknown>;
}
