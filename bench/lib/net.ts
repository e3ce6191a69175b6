import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Child } from './procs.ts';
import { tail } from './procs.ts';

export const HOST = '127.0.0.1';

/** A port the kernel considers free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** One GET with a fresh connection and a short timeout. */
export function get(url: string, timeoutMs = 1000, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return request(url, { timeoutMs, headers });
}

/** One request with a fresh connection and a short timeout; the whole body as text. */
export function request(url: string, o: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<HttpAnswer> {
  const timeoutMs = o.timeoutMs ?? 1000;
  const method = o.method ?? 'GET';
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, timeout: timeoutMs, headers: o.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Polls url until it answers 200; fails early if the child exits. */
export async function waitFor200(url: string, child: Child, deadlineMs = 15_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  let exited: number | string | undefined;
  void child.exited.then((code) => (exited = code));
  let last = 'no answer';
  while (Date.now() < until) {
    if (exited !== undefined) throw new Error(`${child.name} exited with ${exited} before it was ready:\n${tail(child.stderr() || child.stdout())}`);
    try {
      const { status, body } = await get(url, 500);
      if (status === 200) return;
      last = `${status} ${body.slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${child.name} was not ready at ${url} within ${deadlineMs} ms (last: ${last})`);
}
