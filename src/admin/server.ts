import http from 'node:http';
import type { ReadinessCheck } from '../core/index.ts';
import { SidecarError, sendError } from '../errors/index.ts';
import { listenerTimeouts, type ClientTimeouts } from '../ingress/index.ts';

export interface AdminOptions {
  isDraining: () => boolean;
  checks: readonly ReadinessCheck[];
  /** Further endpoints by exact path (POST /revoke); each checks its own method and credentials. */
  handlers?: ReadonlyMap<string, http.RequestListener>;
  /** limits.client*Timeout, which the admin listener's clients get too. */
  timeouts: ClientTimeouts;
}

/**
 * The admin listener: /healthz says the process is alive; /readyz says it should get
 * traffic (not draining, and every readiness check passes).
 */
export function createAdminServer(options: AdminOptions): http.Server {
  return http.createServer(listenerTimeouts(options.timeouts), (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const handler = options.handlers?.get(path);
    if (handler !== undefined) {
      handler(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new SidecarError('SIDECAR_NOT_FOUND'), undefined);
      return;
    }
    if (path === '/healthz') {
      json(res, 200, { status: 'alive' });
      return;
    }
    if (path === '/readyz') {
      void readiness(options).then(({ ready, checks }) => json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks }));
      return;
    }
    sendError(res, new SidecarError('SIDECAR_NOT_FOUND'), undefined);
  });
}

async function readiness(options: AdminOptions): Promise<{ ready: boolean; checks: Record<string, string> }> {
  const checks: Record<string, string> = {};
  if (options.isDraining()) checks.draining = 'shutting down';
  const results = await Promise.all(options.checks.map(async (c) => [c.name, await c.check().catch((e: Error) => e.message)] as const));
  for (const [name, problem] of results) checks[name] = problem ?? 'ok';
  const ready = Object.values(checks).every((v) => v === 'ok');
  return { ready, checks };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
