import http from 'node:http';
import net from 'node:net';
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

/**
 * A client that sends `Expect: 100-continue` and its body only once it got `100 Continue`;
 * returns everything the server wrote until it closed the connection (or 3 s passed).
 */
function expectContinue(port: number, head: string, body: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let sent = false;
    socket.on('connect', () => socket.write(head));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (!sent && text.startsWith('HTTP/1.1 100 ')) {
        sent = true;
        socket.write(body);
      }
    });
    socket.on('error', () => {});
    const end = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    socket.once('close', () => end(true));
    const timer = setTimeout(() => end(false), 3000);
  });
}

describe('Expect: 100-continue', () => {
  const received: Array<{ url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  let agent: Awaited<ReturnType<typeof startServer>>;
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  beforeAll(async () => {
    agent = await startServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        received.push({ url: req.url!, headers: req.headers, body });
        res.end(`agent got ${body.length}`);
      });
    });
    sidecar = await startSidecar({
      upstream: { url: agent.url },
      auth: { jwt: { secret: SECRET } },
      rateLimit: { routes: [{ path: '/api/v1/agents', methods: ['POST'], requests: 1, per: '1h' }] },
    });
  });
  afterAll(async () => {
    await sidecar.close();
    await agent.close();
  });

  const post = (auth: string | undefined, body: string, extra = '') =>
    `POST /api/v1/agents HTTP/1.1\r\nHost: a\r\n${auth === undefined ? '' : `Authorization: Bearer ${auth}\r\n`}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n${extra}\r\n`;
  const codeOf = (text: string) => (JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { code: string } }).error.code;

  it('refuses without inviting the body: no 100 Continue, and the connection closes', async () => {
    received.length = 0;
    const body = JSON.stringify({ name: 'never sent' });
    const cases: Array<[string | undefined, string]> = [
      [undefined, 'SIDECAR_CREDENTIALS_MISSING'],
      ['not-a-jwt', 'SIDECAR_TOKEN_MALFORMED'],
      [await token(['analyst']), 'SIDECAR_FORBIDDEN'],
    ];
    for (const [auth, code] of cases) {
      const { text, closed } = await expectContinue(sidecar.port, post(auth, body), body);
      expect(text).not.toContain('100 Continue');
      expect(codeOf(text)).toBe(code);
      expect(text.toLowerCase()).toContain('\r\nconnection: close\r\n');
      expect(closed).toBe(true);
    }
    expect(received).toHaveLength(0);
  });

  it('invites the body of an authorized request, which reaches the agent without Expect; over the rate limit, it does not', async () => {
    received.length = 0;
    const manager = await token(['agent_manager']);
    const body = JSON.stringify({ name: 'support' });
    const ok = await expectContinue(sidecar.port, post(manager, body, 'Connection: close\r\n'), body);
    expect(ok.text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ')).toBe(true);
    expect(ok.text).toContain(`agent got ${body.length}`);
    expect(received).toHaveLength(1);
    expect(received[0]!.body).toBe(body);
    expect(received[0]!.headers.expect).toBeUndefined();

    const limited = await expectContinue(sidecar.port, post(manager, body), body);
    expect(limited.text).not.toContain('100 Continue');
    expect(codeOf(limited.text)).toBe('SIDECAR_RATE_LIMITED');
    expect(limited.closed).toBe(true);
    expect(received).toHaveLength(1);
  });

  it('answers any other expectation with 417 and a code', async () => {
    const { text } = await expectContinue(sidecar.port, 'POST /api/v1/agents HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: something-else\r\n\r\nab', '');
    expect(text.startsWith('HTTP/1.1 417 ')).toBe(true);
    expect(codeOf(text)).toBe('SIDECAR_EXPECTATION_FAILED');
  });
});
