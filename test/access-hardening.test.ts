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
    const sidecar = await startSidecar({
      upstream: { url: upstream.url },
      auth: { jwt: { secret: SECRET } },
      cors: { allowedOrigins: ['https://app.example'] },
    });
    try {
      seen.length = 0;
      const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
      const preflight = await rawExchange(
        sidecar.port,
        `OPTIONS /x/../../secret HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n${upgrade}\r\n`,
        1500,
      );
      // The status lines only: a request id in the answer may hold the digits 101.
      expect(preflight).not.toMatch(/^HTTP\/1\.1 101 /m);
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
      const res = await request(`${sidecar.url}/api/v1/agents/7`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${analyst}`, 'x-http-method-override': 'GET' },
      });
      expect(res.statusCode).toBe(403);
      expect(((await res.body.json()) as { error: { code: string; permission: string } }).error).toMatchObject({
        code: 'SIDECAR_FORBIDDEN',
        permission: 'delete:agent',
      });
      const pub = await request(`${sidecar.url}/health`, { method: 'POST', body: 'x', headers: { 'x-http-method-override': 'GET' } });
      expect(pub.statusCode).toBe(401);
      await pub.body.dump();
      expect(seen).toHaveLength(0);
    } finally {
      await sidecar.close();
    }
  });

  it('removes the token cookie and other proxies’ headers before forwarding', async () => {
    const sidecar = await startSidecar({
      upstream: { url: upstream.url },
      auth: { jwt: { secret: SECRET, cookie: 'session' } },
      proxy: { trustedProxies: [] },
    });
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

describe('client headers with `_` or `.` in their names (CGI-style servers read them as the `-` spelling)', () => {
  let upstream: Awaited<ReturnType<typeof startServer>>;
  /** Each request's raw header names and values as the agent received them. */
  const seen: Array<{ url: string; raw: string[] }> = [];
  beforeAll(async () => {
    upstream = await startServer((req, res) => {
      seen.push({ url: req.url!, raw: req.rawHeaders });
      res.end('ok');
    });
    upstream.server.on('upgrade', (req, socket) => {
      seen.push({ url: req.url!, raw: req.rawHeaders });
      socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    });
  });
  afterAll(() => upstream.close());

  const names = (raw: string[]) => raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  const value = (raw: string[], name: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name);
  const UPGRADE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
  // Spellings of the identity, credential and sidecar-owned headers, and a harmless one.
  const SPOOFS =
    'x_auth_subject: evil\r\nX_Auth_Roles: admin\r\nx.auth.tenant: other\r\nx_AUTH-scopes: all\r\nx_api_key: sk_sidecar_deadbeef_' +
    'A'.repeat(43) +
    '\r\nX_Forwarded_For: 10.0.0.1\r\nx_request_id: forged\r\nx_custom_trace: 1\r\nx.custom: 2\r\n';
  const status = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  const code = (text: string) => /"code":"([A-Z_]+)"/.exec(text)?.[1];

  it('drops them by default, on HTTP and WebSocket requests, auth on or off', async () => {
    const bearer = `Authorization: Bearer ${await token(['analyst'])}\r\n`;
    for (const auth of [{ jwt: { secret: SECRET } }, {}]) {
      const sidecar = await startSidecar({ upstream: { url: upstream.url }, auth });
      try {
        seen.length = 0;
        const http = await rawExchange(sidecar.port, `GET /api/v1/agents HTTP/1.1\r\nHost: a\r\n${bearer}${SPOOFS}X-Custom: kept\r\nConnection: close\r\n\r\n`);
        expect(status(http)).toBe(200);
        const ws = await rawExchange(sidecar.port, `GET /api/v1/agents HTTP/1.1\r\nHost: a\r\n${bearer}${SPOOFS}${UPGRADE}\r\n`, 1500);
        expect(status(ws)).toBe(101);
        expect(seen).toHaveLength(2);
        for (const { raw } of seen) {
          expect(names(raw).filter((n) => n.includes('_') || n.includes('.'))).toEqual([]);
          expect(value(raw, 'x-auth-subject')).toEqual('jwt' in auth ? ['carol'] : []);
          expect(value(raw, 'x-auth-roles')).toEqual('jwt' in auth ? ['analyst'] : []);
          expect(value(raw, 'x-forwarded-for')).toEqual(['127.0.0.1']);
          expect(value(raw, 'x-request-id')).not.toContain('forged');
        }
        expect(value(seen[0]!.raw, 'x-custom')).toEqual(['kept']);
      } finally {
        await sidecar.close();
      }
    }
  });

  it('refuses the request with 400 SIDECAR_HEADER_NAME_REFUSED when set to refuse, before authentication', async () => {
    const sidecar = await startSidecar({ upstream: { url: upstream.url }, auth: { jwt: { secret: SECRET } }, proxy: { headersWithUnderscores: 'refuse' } });
    try {
      seen.length = 0;
      const bearer = `Authorization: Bearer ${await token(['analyst'])}\r\n`;
      for (const header of ['x_auth_subject: evil', 'X_Custom: 1', 'x.auth.roles: admin', 'x_api_key: k']) {
        for (const creds of [bearer, '']) {
          const http = await rawExchange(sidecar.port, `GET /api/v1/agents HTTP/1.1\r\nHost: a\r\n${creds}${header}\r\nConnection: close\r\n\r\n`);
          expect([status(http), code(http)]).toEqual([400, 'SIDECAR_HEADER_NAME_REFUSED']);
        }
        const ws = await rawExchange(sidecar.port, `GET /api/v1/agents HTTP/1.1\r\nHost: a\r\n${bearer}${header}\r\n${UPGRADE}\r\n`, 1500);
        expect([status(ws), code(ws)]).toEqual([400, 'SIDECAR_HEADER_NAME_REFUSED']);
      }
      expect(seen).toEqual([]);
      const clean = await rawExchange(sidecar.port, `GET /api/v1/agents HTTP/1.1\r\nHost: a\r\n${bearer}X-Custom: 1\r\nConnection: close\r\n\r\n`);
      expect(status(clean)).toBe(200);
    } finally {
      await sidecar.close();
    }
  });

  it('forwards them when allowed, but never one that spells a header the sidecar removes or sets', async () => {
    const sidecar = await startSidecar({
      upstream: { url: upstream.url },
      // API keys on: x-api-key is a credential, never forwarded. The tenant header renamed,
      // so x-auth-tenant is nobody's and its spellings pass, and the dash spelling of the new one does not.
      auth: { jwt: { secret: SECRET }, apiKeys: {}, identityHeaders: { tenant: 'x_tenant' } },
      proxy: { headersWithUnderscores: 'allow' },
    });
    try {
      seen.length = 0;
      const bearer = `Authorization: Bearer ${await token(['analyst'], { tenant_id: 't1' })}\r\n`;
      const extra = 'Content_Length: 5\r\nX-Tenant: forged\r\nx.tenant: forged\r\nConnection: close, x_hop\r\nx_hop: 1\r\n';
      const http = await rawExchange(sidecar.port, `GET /api/v1/agents HTTP/1.1\r\nHost: a\r\n${bearer}${SPOOFS}${extra}\r\n`);
      expect(status(http)).toBe(200);
      const { raw } = seen[0]!;
      expect(names(raw).filter((n) => n.includes('_') || n.includes('.'))).toEqual(['x.auth.tenant', 'x_custom_trace', 'x.custom', 'x_tenant']);
      expect(value(raw, 'x_tenant')).toEqual(['t1']);
      expect(value(raw, 'x-tenant')).toEqual([]);
      expect(value(raw, 'x-auth-subject')).toEqual(['carol']);
      expect(value(raw, 'x-forwarded-for')).toEqual(['127.0.0.1']);
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

  it('the refresh endpoint reads its body as the proxy does: a client waiting for 100 Continue gets it, then its token', async () => {
    const refreshing = await startSidecar({ upstream: { url: agent.url }, auth: { jwt: { secret: SECRET }, refresh: { enabled: true } } });
    try {
      const body = JSON.stringify({ refresh_token: await token(['analyst'], {}, 'refresh') });
      const head = `POST /auth/refresh HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
      const { text } = await expectContinue(refreshing.port, head, body);
      expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ')).toBe(true);
      expect(text).toContain('"access_token"');
    } finally {
      await refreshing.close();
    }
  });

  it('answers any other expectation with 417 and a code', async () => {
    const { text } = await expectContinue(sidecar.port, 'POST /api/v1/agents HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: something-else\r\n\r\nab', '');
    expect(text.startsWith('HTTP/1.1 417 ')).toBe(true);
    expect(codeOf(text)).toBe('SIDECAR_EXPECTATION_FAILED');
  });
});
