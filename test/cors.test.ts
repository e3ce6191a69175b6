import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig, type SidecarConfigInput } from '../src/config/index.ts';
import { createCors, type CorsStage } from '../src/cors/index.ts';
import { isSidecarError, type SidecarError } from '../src/errors/index.ts';
import type { RequestContext } from '../src/core/index.ts';
import { startServer } from './helpers.ts';

const APP = 'https://app.example.com';

const corsOf = (cors: SidecarConfigInput['cors']) => validateConfig({ cors }).cors;
const stageOf = (cors: SidecarConfigInput['cors']) => createCors(corsOf(cors))!;

/**
 * A real server whose request path is the CORS stage followed by a stand-in for the rest of
 * the pipeline: it answers 200 when the stage let the request through, as the ingress does.
 */
let stage: CorsStage;
let server: Awaited<ReturnType<typeof startServer>>;
beforeAll(async () => {
  server = await startServer((req, res) => {
    const ctx = { req, res, responseHeaders: new Map<string, string>() } as unknown as RequestContext;
    try {
      stage(ctx);
    } catch (err) {
      if (!isSidecarError(err)) throw err;
      res.writeHead(err.status, { 'x-error-code': err.code, ...Object.fromEntries(ctx.responseHeaders) }).end();
      return;
    }
    if (ctx.reply !== undefined) res.writeHead(ctx.reply.status, ctx.reply.headers).end();
    else res.writeHead(200, { 'x-passed': 'yes', ...Object.fromEntries(ctx.responseHeaders) }).end('ok');
  });
});
afterAll(() => server.close());

function send(method: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${server.url}/api/v1/agents`, { method, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const preflight = (origin: string, method: string, requestHeaders?: string) =>
  send('OPTIONS', {
    origin,
    'access-control-request-method': method,
    ...(requestHeaders === undefined ? {} : { 'access-control-request-headers': requestHeaders }),
  });

describe('CORS preflight', () => {
  it('answers an allowed preflight itself with 204, without credentials', async () => {
    stage = stageOf({ allowedOrigins: [APP, 'http://localhost:3000'] });
    const res = await preflight(APP, 'PUT', 'Authorization, Content-Type, X-Request-ID');
    expect(res.status).toBe(204);
    expect(res.headers['x-passed']).toBeUndefined();
    expect(res.headers).toMatchObject({
      'access-control-allow-origin': APP,
      'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE',
      'access-control-allow-headers': 'authorization, content-type, x-api-key, x-request-id',
      'access-control-max-age': '600',
      vary: 'origin',
    });
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
  });

  it('says so when credentials are allowed, and answers * for any origin without them', async () => {
    stage = stageOf({ allowedOrigins: [APP], allowCredentials: true, maxAge: '1h' });
    expect((await preflight(APP, 'GET')).headers).toMatchObject({ 'access-control-allow-credentials': 'true', 'access-control-max-age': '3600' });

    stage = stageOf({ allowedOrigins: ['*'] });
    const res = await preflight('https://anyone.example', 'DELETE');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('*');
  });

  it.each([
    ['an origin not listed', 'https://evil.example', 'GET', undefined],
    ['a look-alike origin', 'https://app.example.com.evil.example', 'GET', undefined],
    ['the null origin', 'null', 'GET', undefined],
    ['a method not listed', APP, 'PROPFIND', undefined],
    ['a header not listed', APP, 'POST', 'content-type, x-internal-override'],
  ])('refuses %s with SIDECAR_CORS_REFUSED', async (_what, origin, method, requestHeaders) => {
    stage = stageOf({ allowedOrigins: [APP] });
    const res = await preflight(origin, method, requestHeaders);
    expect(res.status).toBe(403);
    expect(res.headers['x-error-code']).toBe('SIDECAR_CORS_REFUSED');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('matches origins as browsers serialize them', async () => {
    stage = stageOf({ allowedOrigins: ['https://App.Example.com:443/'] });
    expect((await preflight(APP, 'GET')).status).toBe(204);
    expect((await preflight('https://app.example.com:8443', 'GET')).status).toBe(403);
    expect((await preflight('http://app.example.com', 'GET')).status).toBe(403);
  });

  it('treats OPTIONS without Access-Control-Request-Method as an ordinary request', async () => {
    stage = stageOf({ allowedOrigins: [APP] });
    const res = await send('OPTIONS', { origin: 'https://evil.example' });
    expect(res.status).toBe(200);
    expect(res.headers['x-passed']).toBe('yes');
  });
});

describe('CORS on ordinary requests', () => {
  it('adds the response headers for an allowed origin and lets the request go on', async () => {
    stage = stageOf({ allowedOrigins: [APP], allowCredentials: true });
    const res = await send('GET', { origin: APP, authorization: 'Bearer x' });
    expect(res.status).toBe(200);
    expect(res.headers).toMatchObject({
      'x-passed': 'yes',
      'access-control-allow-origin': APP,
      'access-control-expose-headers': 'x-request-id, retry-after, ratelimit, ratelimit-policy',
      'access-control-allow-credentials': 'true',
      vary: 'origin',
    });
  });

  it('adds no CORS headers for another origin or no origin, and still lets the request go on', async () => {
    stage = stageOf({ allowedOrigins: [APP] });
    for (const headers of [{ origin: 'https://evil.example' }, {}] as Array<Record<string, string>>) {
      const res = await send('POST', headers);
      expect(res.status).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
      // The answer depends on Origin, so shared caches must key on it (Fetch standard 3.2.5).
      expect(res.headers.vary).toBe('origin');
    }
  });
});

describe('CORS configuration', () => {
  const codeOf = (cors: SidecarConfigInput['cors']) => {
    try {
      stageOf(cors);
    } catch (err) {
      return (err as SidecarError).code;
    }
    return 'accepted';
  };

  it.each([
    ['* with credentials', { allowedOrigins: ['*'], allowCredentials: true }],
    ['the null origin', { allowedOrigins: ['null'] }],
    ['an origin with a path', { allowedOrigins: ['https://app.example.com/app'] }],
    ['a host without a scheme', { allowedOrigins: ['app.example.com'] }],
    ['a header name with a space', { allowedOrigins: [APP], allowedHeaders: ['x bad'] }],
  ])('refuses %s at creation with SIDECAR_CONFIG_INVALID', (_what, cors) => {
    expect(codeOf(cors)).toBe('SIDECAR_CONFIG_INVALID');
  });

  it('is off without a cors section', () => {
    expect(createCors(undefined)).toBeUndefined();
    expect(codeOf({ allowedOrigins: ['*'] })).toBe('accepted');
  });
});
