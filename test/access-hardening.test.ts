import http from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../src/auth/issuer.ts';
import { rawExchange, startServer, startSidecar } from './helpers.ts';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const token = (roles: string[], extra: Record<string, unknown> = {}, type: 'access' | 'refresh' = 'access') =>
  issueToken(SECRET, { sub: 'carol', roles, type, ...extra }, 60_000);


describe('access hardening', () => {
  let upstream: Awaited<ReturnType<typeof startServer>>;
  const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders }> = [];
  beforeAll(async () => {
    upstream = await startServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      res.end('ok');
    });
    upstream.server.on('upgrade', (req, socket) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    });
  });
  afterAll(() => upstream.close());

  it('never tunnels an upgrade that a CORS preflight answered, nor a non-GET upgrade', async () => {
    const sidecar = await startSidecar({ upstream: { url: upstream.url }, auth: { jwt: { secret: SECRET } }, cors: { allowedOrigins: ['https://app.example'] } });
    try {
      seen.length = 0;
      const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
      const preflight = await rawExchange(
        sidecar.port,
        `OPTIONS /x/../../secret HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n${upgrade}\r\n`,
        1500,
      );
      expect(preflight).not.toContain('101');
      const post = await rawExchange(sidecar.port, `POST /api/v1/agents HTTP/1.1\r\nHost: a\r\n${upgrade}\r\n`, 1500);
      expect(post).toContain('SIDECAR_UPGRADE_REFUSED');
      expect(seen).toHaveLength(0);
    } finally {
      await sidecar.close();
    }
  });

  it('with method overrides authorized, both the real and the named method must be allowed', async () => {
    const sidecar = await startSidecar({ upstream: { url: upstream.url }, auth: { jwt: { secret: SECRET } }, policy: { methodOverride: 'authorize' } });
    try {
      seen.length = 0;
      const analyst = await token(['analyst']);
      const res = await request(`${sidecar.url}/api/v1/agents/7`, { method: 'DELETE', headers: { authorization: `Bearer ${analyst}`, 'x-http-method-override': 'GET' } });
      expect(res.statusCode).toBe(403);
      expect(((await res.body.json()) as { error: { code: string; permission: string } }).error).toMatchObject({ code: 'SIDECAR_FORBIDDEN', permission: 'delete:agent' });
      const pub = await request(`${sidecar.url}/health`, { method: 'POST', body: 'x', headers: { 'x-http-method-override': 'GET' } });
      expect(pub.statusCode).toBe(401);
      await pub.body.dump();
      expect(seen).toHaveLength(0);
    } finally {
      await sidecar.close();
    }
  });

  it('removes the token cookie and other proxies’ headers before forwarding', async () => {
    const sidecar = await startSidecar({ upstream: { url: upstream.url }, auth: { jwt: { secret: SECRET, cookie: 'session' } }, proxy: { trustedProxies: [] } });
    try {
      seen.length = 0;
      const t = await token(['analyst']);
      const res = await request(`${sidecar.url}/api/v1/agents`, {
        headers: { cookie: `theme=dark; session=${t}`, 'x-real-ip': '6.6.6.6', 'x-original-url': '/admin/delete', 'x-forwarded-prefix': '/admin' },
      });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      const h = seen[0]!.headers;
      expect(h.cookie).toBe('theme=dark');
      expect(h['x-real-ip']).toBeUndefined();
      expect(h['x-original-url']).toBeUndefined();
      expect(h['x-forwarded-prefix']).toBeUndefined();
    } finally {
      await sidecar.close();
    }
  });

  it('issues refreshed tokens that pass the configured issuer, audience and roles claim', async () => {
    const sidecar = await startSidecar({
      upstream: { url: upstream.url },
      auth: { jwt: { secret: SECRET, issuer: 'https://idp.example', audience: 'agents', claims: { roles: 'realm_access.roles' } }, refresh: { enabled: true } },
    });
    try {
      const refresh = await token([], { iss: 'https://idp.example', aud: 'agents', realm_access: { roles: ['analyst'] } }, 'refresh');
      const res = await request(`${sidecar.url}/auth/refresh`, { method: 'POST', headers: { authorization: `Bearer ${refresh}` } });
      expect(res.statusCode).toBe(200);
      const { access_token } = (await res.body.json()) as { access_token: string };
      const use = await request(`${sidecar.url}/api/v1/agents`, { headers: { authorization: `Bearer ${access_token}` } });
      expect(use.statusCode).toBe(200);
      await use.body.dump();
    } finally {
      await sidecar.close();
    }
  });
});
