import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createAuthenticator, createClaimMapper, createJwtVerifier, createKeyring, importJwk, type Authenticator } from '../src/auth/index.ts';
import { validateConfig, type SidecarConfigInput } from '../src/config/index.ts';
import { isSidecarError } from '../src/errors/index.ts';
import { createLogger } from '../src/log/index.ts';
import { serveAuthenticator, startServer } from './helpers.ts';
import { thrownBy } from './thrown.ts';

type JwtInput = NonNullable<NonNullable<SidecarConfigInput['auth']>['jwt']>;
type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

const logger = createLogger('silent');
const ISS = 'https://idp.test';
const AUD = 'agent-api';
const SECRET = 'x'.repeat(48);
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

let clock = Date.now();
const now = () => clock;
const nowS = () => Math.floor(clock / 1000);

let rsa1: { publicKey: Key; privateKey: Key };
let rsa2: { publicKey: Key; privateKey: Key };
let ec: { publicKey: Key; privateKey: Key };
let attacker: { publicKey: Key; privateKey: Key };
let jwk1: JWK;
let jwk2: JWK;

/** A JWKS endpoint whose answer the test controls; counts its fetches. */
let jwksBody: string | undefined;
let jwksStatus = 200;
let jwksFetches = 0;
let jwksServer: Awaited<ReturnType<typeof startServer>>;
let attackerFetches = 0;
let attackerServer: Awaited<ReturnType<typeof startServer>>;

function claims(extra: JWTPayload = {}): JWTPayload {
  return { sub: 'alice', iss: ISS, aud: AUD, iat: nowS(), exp: nowS() + 300, roles: ['analyst'], scopes: ['read'], ...extra };
}

async function sign(payload: JWTPayload, key: Key | Uint8Array, header: Record<string, unknown> = { alg: 'RS256', kid: 'rsa-1' }): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(key);
}

async function serve(auth: Authenticator) {
  const served = await serveAuthenticator(auth);
  const codeFor = async (token: string) => (await served.call({ authorization: `Bearer ${token}` })).code;
  return { ...served, codeFor };
}

async function makeAuth(jwt: JwtInput) {
  const config = validateConfig({ auth: { jwt } }).auth;
  const auth = await createAuthenticator(config, { logger, now });
  const http = await serve(auth);
  return { auth, ...http, close: async () => (await http.close(), await auth.close()) };
}

beforeAll(async () => {
  [rsa1, rsa2, ec, attacker] = await Promise.all([
    generateKeyPair('RS256', { extractable: true }),
    generateKeyPair('RS256', { extractable: true }),
    generateKeyPair('ES256', { extractable: true }),
    generateKeyPair('RS256', { extractable: true }),
  ]);
  jwk1 = { ...(await exportJWK(rsa1.publicKey)), kid: 'rsa-1', use: 'sig' };
  jwk2 = { ...(await exportJWK(rsa2.publicKey)), kid: 'rsa-2', use: 'sig' };
  jwksBody = JSON.stringify({ keys: [jwk1] });
  jwksServer = await startServer((_req, res) => {
    jwksFetches += 1;
    res.statusCode = jwksStatus;
    res.end(jwksBody);
  });
  const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: 'evil' };
  attackerServer = await startServer((_req, res) => {
    attackerFetches += 1;
    res.end(JSON.stringify({ keys: [attackerJwk] }));
  });
});

afterAll(async () => {
  await jwksServer.close();
  await attackerServer.close();
});

describe('attacks on the JWT verifier', () => {
  let t: Awaited<ReturnType<typeof makeAuth>>;
  beforeAll(async () => {
    t = await makeAuth({ jwksUrl: jwksServer.url, issuer: ISS, audience: AUD, cacheSize: 0 });
  });
  afterAll(() => t.close());

  it('accepts a good token and maps its claims onto the principal', async () => {
    const token = await sign(claims({ jti: 'j-1', tenant_id: 't-9', sid: 's-1', scope: 'write read' }), rsa1.privateKey);
    const { status, principal } = await t.call({ authorization: `bEaReR ${token}` });
    expect(status).toBe(200);
    expect(principal).toMatchObject({ subject: 'alice', roles: ['analyst'], method: 'jwt', keyId: 'rsa-1', tokenId: 'j-1', tenantId: 't-9', sessionId: 's-1' });
    expect(principal!.scopes).toEqual(['read', 'write']);
  });

  it('answers undefined without a credential, or with another scheme', async () => {
    expect((await t.call({})).principal).toBeNull();
    expect((await t.call({ authorization: 'Basic YWxpY2U6cHc=' })).principal).toBeNull();
  });

  it('refuses alg none, with or without a signature', async () => {
    const body = b64(claims());
    expect(await t.codeFor(`${b64({ alg: 'none', typ: 'JWT' })}.${body}.`)).toBe('SIDECAR_TOKEN_ALGORITHM_REFUSED');
    expect(await t.codeFor(`${b64({ alg: 'none' })}.${body}.${b64('sig')}`)).toBe('SIDECAR_TOKEN_ALGORITHM_REFUSED');
    expect(await t.codeFor(`${b64({ alg: 'NONE' })}.${body}.`)).toBe('SIDECAR_TOKEN_ALGORITHM_REFUSED');
  });

  it('refuses HS256 signed with the RSA public key as the HMAC secret', async () => {
    const pem = new TextEncoder().encode(await exportSPKI(rsa1.publicKey));
    const token = await sign(claims(), pem, { alg: 'HS256', kid: 'rsa-1' });
    expect(await t.codeFor(token)).toBe('SIDECAR_TOKEN_ALGORITHM_REFUSED');
    // With a secret configured HS256 is allowed, but only the secret verifies it.
    const withSecret = await makeAuth({ secret: SECRET, keyFiles: [], jwksUrl: jwksServer.url, issuer: ISS, audience: AUD });
    try {
      expect(await withSecret.codeFor(token)).toBe('SIDECAR_TOKEN_SIGNATURE_INVALID');
      expect((await withSecret.call({ authorization: `Bearer ${await sign(claims(), new TextEncoder().encode(SECRET), { alg: 'HS256' })}` })).status).toBe(200);
    } finally {
      await withSecret.close();
    }
  });

  it('refuses an unknown kid, an expired token and a token not yet valid', async () => {
    expect(await t.codeFor(await sign(claims(), rsa2.privateKey, { alg: 'RS256', kid: 'nobody' }))).toBe('SIDECAR_TOKEN_KEY_UNKNOWN');
    expect(await t.codeFor(await sign(claims({ iat: nowS() - 600, exp: nowS() - 60 }), rsa1.privateKey))).toBe('SIDECAR_TOKEN_EXPIRED');
    expect(await t.codeFor(await sign(claims({ nbf: nowS() + 120 }), rsa1.privateKey))).toBe('SIDECAR_TOKEN_NOT_YET_VALID');
    // Within the 30 s clock skew both are still fine.
    expect((await t.call({ authorization: `Bearer ${await sign(claims({ exp: nowS() - 10 }), rsa1.privateKey)}` })).status).toBe(200);
  });

  it('refuses a wrong issuer or audience, a missing sub or exp, a non-numeric exp', async () => {
    expect(await t.codeFor(await sign(claims({ iss: 'https://evil.test' }), rsa1.privateKey))).toBe('SIDECAR_TOKEN_CLAIM_INVALID');
    expect(await t.codeFor(await sign(claims({ aud: 'other' }), rsa1.privateKey))).toBe('SIDECAR_TOKEN_CLAIM_INVALID');
    expect(await t.codeFor(await sign(claims({ sub: undefined }), rsa1.privateKey))).toBe('SIDECAR_TOKEN_CLAIM_INVALID');
    expect(await t.codeFor(await sign(claims({ exp: undefined }), rsa1.privateKey))).toBe('SIDECAR_TOKEN_CLAIM_INVALID');
    expect(await t.codeFor(await sign({ ...claims(), exp: 'tomorrow' as unknown as number }, rsa1.privateKey))).toBe('SIDECAR_TOKEN_CLAIM_INVALID');
    expect(await t.codeFor(await sign(claims({ roles: { admin: true } }), rsa1.privateKey))).toBe('SIDECAR_TOKEN_CLAIM_INVALID');
  });

  it('refuses a tampered payload or signature', async () => {
    const [h, , s] = (await sign(claims(), rsa1.privateKey)).split('.');
    expect(await t.codeFor(`${h}.${b64(claims({ roles: ['admin'] }))}.${s}`)).toBe('SIDECAR_TOKEN_SIGNATURE_INVALID');
    const flipped = (s![0] === 'A' ? 'B' : 'A') + s!.slice(1);
    expect(await t.codeFor(`${h}.${b64(claims())}.${flipped}`)).toBe('SIDECAR_TOKEN_SIGNATURE_INVALID');
  });

  it('refuses a refresh token used as an access token', async () => {
    expect(await t.codeFor(await sign(claims({ type: 'refresh' }), rsa1.privateKey))).toBe('SIDECAR_TOKEN_TYPE_REFUSED');
  });

  it('refuses a 16 KB token before parsing it', async () => {
    const token = await sign(claims({ pad: 'p'.repeat(16 * 1024) }), rsa1.privateKey);
    const { status, code } = await t.call({ authorization: `Bearer ${token}` });
    expect([status, code]).toEqual([401, 'SIDECAR_TOKEN_TOO_LARGE']);
    expect(await t.codeFor('!'.repeat(9000))).toBe('SIDECAR_TOKEN_TOO_LARGE');
  });

  it('refuses malformed tokens', async () => {
    for (const bad of ['a.b', '...', 'a.b.c', '!!!.x.y', `${b64('not json')}.${b64(claims())}.sig`, `${b64([1])}.e30.sig`, 'a.b.c.d.e']) {
      expect(await t.codeFor(bad), bad).toBe('SIDECAR_TOKEN_MALFORMED');
    }
    expect((await t.call({ authorization: 'Bearer' })).code).toBe('SIDECAR_TOKEN_MALFORMED');
    expect((await t.call({ authorization: 'Bearer a b' })).code).toBe('SIDECAR_TOKEN_MALFORMED');
  });

  it('ignores jku, x5u and embedded jwk headers pointing at an attacker key', async () => {
    const evilJwk = await exportJWK(attacker.publicKey);
    const headers = { jku: `${attackerServer.url}/jwks.json`, x5u: `${attackerServer.url}/cert.pem`, jwk: evilJwk };
    expect(await t.codeFor(await sign(claims(), attacker.privateKey, { alg: 'RS256', kid: 'rsa-1', ...headers }))).toBe('SIDECAR_TOKEN_SIGNATURE_INVALID');
    expect(await t.codeFor(await sign(claims(), attacker.privateKey, { alg: 'RS256', ...headers }))).toBe('SIDECAR_TOKEN_SIGNATURE_INVALID');
    clock += 60_000; // past the cooldown, so that the unknown kid really refetches our JWKS
    expect(await t.codeFor(await sign(claims(), attacker.privateKey, { alg: 'RS256', kid: 'evil', ...headers }))).toBe('SIDECAR_TOKEN_KEY_UNKNOWN');
    expect(attackerFetches).toBe(0);
  });
});

describe('JWKS cache', () => {
  it('accepts a rotated key without restart, honours the cooldown, keeps the last good keys', async () => {
    jwksBody = JSON.stringify({ keys: [jwk1] });
    const t = await makeAuth({ jwksUrl: jwksServer.url, jwksCooldown: '30s', cacheSize: 0 });
    try {
      const start = jwksFetches;
      const rotated = await sign(claims(), rsa2.privateKey, { alg: 'RS256', kid: 'rsa-2' });
      clock += 31_000;
      expect(await t.codeFor(rotated)).toBe('SIDECAR_TOKEN_KEY_UNKNOWN');
      expect(jwksFetches).toBe(start + 1);
      // The provider publishes the new key; within the cooldown no refetch happens.
      jwksBody = JSON.stringify({ keys: [jwk1, jwk2] });
      expect(await t.codeFor(rotated)).toBe('SIDECAR_TOKEN_KEY_UNKNOWN');
      expect(await t.codeFor(await sign(claims(), rsa2.privateKey, { alg: 'RS256', kid: 'random' }))).toBe('SIDECAR_TOKEN_KEY_UNKNOWN');
      expect(jwksFetches).toBe(start + 1);
      clock += 31_000;
      expect((await t.call({ authorization: `Bearer ${rotated}` })).principal).toMatchObject({ keyId: 'rsa-2' });
      expect(jwksFetches).toBe(start + 2);

      // Junk, then an error status: the keys in hand keep verifying.
      for (const [status, body] of [
        [200, '<html>oops</html>'],
        [200, '{"keys":"x"}'],
        [500, 'down'],
      ] as const) {
        jwksStatus = status;
        jwksBody = body;
        clock += 31_000;
        expect(await t.codeFor(await sign(claims(), rsa2.privateKey, { alg: 'RS256', kid: 'still-unknown' }))).toBe('SIDECAR_TOKEN_KEY_UNKNOWN');
        expect((await t.call({ authorization: `Bearer ${await sign(claims(), rsa1.privateKey)}` })).status).toBe(200);
        expect((await t.call({ authorization: `Bearer ${rotated}` })).status).toBe(200);
      }
      expect(jwksFetches).toBe(start + 5);
      expect(t.auth.readiness()).toBeUndefined();
    } finally {
      jwksStatus = 200;
      jwksBody = JSON.stringify({ keys: [jwk1] });
      await t.close();
    }
  });

  it('keeps verifying with cached keys when the JWKS server is gone', async () => {
    const own = await startServer((_req, res) => res.end(JSON.stringify({ keys: [jwk1] })));
    const t = await makeAuth({ jwksUrl: own.url, cacheSize: 0, jwksTimeout: '1s' });
    try {
      await own.close();
      clock += 60_000;
      expect(await t.codeFor(await sign(claims(), rsa1.privateKey, { alg: 'RS256', kid: 'gone' }))).toBe('SIDECAR_TOKEN_KEY_UNKNOWN');
      expect((await t.call({ authorization: `Bearer ${await sign(claims(), rsa1.privateKey)}` })).principal).toMatchObject({ subject: 'alice' });
    } finally {
      await t.close();
    }
  });

  it('starts with the JWKS down: 503 and not ready, until a fetch succeeds', async () => {
    jwksStatus = 503;
    const t = await makeAuth({ jwksUrl: jwksServer.url, jwksCooldown: '5s' });
    try {
      expect(t.auth.readiness()).toMatch(/JWKS/);
      const token = await sign(claims(), rsa1.privateKey);
      expect(await t.call({ authorization: `Bearer ${token}` })).toMatchObject({ status: 503, code: 'SIDECAR_KEYS_UNAVAILABLE' });
      jwksStatus = 200;
      clock += 6_000;
      expect((await t.call({ authorization: `Bearer ${token}` })).status).toBe(200);
      expect(t.auth.readiness()).toBeUndefined();
    } finally {
      jwksStatus = 200;
      await t.close();
    }
  });
});

describe('key files, secrets and credentials', () => {
  it('verifies with PEM and JWK key files (no kid), a cookie, and refuses HS* without a secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwt-keys-'));
    writeFileSync(join(dir, 'ec.pem'), await exportSPKI(ec.publicKey));
    writeFileSync(join(dir, 'rsa.jwk.json'), JSON.stringify(await exportJWK(rsa2.publicKey)));
    const t = await makeAuth({ keyFiles: [join(dir, 'ec.pem'), join(dir, 'rsa.jwk.json')], cookie: 'session' });
    try {
      expect((await t.call({ authorization: `Bearer ${await sign(claims(), ec.privateKey, { alg: 'ES256' })}` })).status).toBe(200);
      expect((await t.call({ authorization: `Bearer ${await sign(claims(), ec.privateKey, { alg: 'ES256', kid: 'issuer-kid' })}` })).status).toBe(200);
      expect((await t.call({ cookie: `a=1; session=${await sign(claims(), rsa2.privateKey, { alg: 'RS256' })}` })).status).toBe(200);
      expect(await t.codeFor(await sign(claims(), rsa1.privateKey, { alg: 'RS256' }))).toBe('SIDECAR_TOKEN_SIGNATURE_INVALID');
    } finally {
      await t.close();
    }
    // HS256 without a secret: the schema refuses it (so validate does), and so would the authenticator.
    expect(thrownBy(() => validateConfig({ auth: { jwt: { algorithms: ['HS256'] } } })).code).toBe('SIDECAR_CONFIG_INVALID');
    const unchecked = { ...validateConfig({ auth: { jwt: {} } }).auth.jwt!, algorithms: ['HS256' as const] };
    const err = await createAuthenticator({ ...validateConfig({}).auth, jwt: unchecked }, { logger }).catch((e: unknown) => e);
    expect(isSidecarError(err) && err.code).toBe('SIDECAR_CONFIG_INVALID');
    writeFileSync(join(dir, 'private.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    const bad = await createAuthenticator(validateConfig({ auth: { jwt: { keyFiles: [join(dir, 'private.pem')] } } }).auth, { logger }).catch(
      (e: unknown) => e,
    );
    expect(isSidecarError(bad) && bad.code).toBe('SIDECAR_CONFIG_INVALID');
  });

  it('is disabled without jwt or apiKeys', async () => {
    const auth = await createAuthenticator(validateConfig({}).auth, { logger });
    expect(auth.enabled).toBe(false);
    await auth.close();
    await auth.close();
  });

  it('reads roles from a dot path', () => {
    const map = createClaimMapper(validateConfig({ auth: { jwt: { claims: { roles: 'realm_access.roles' } } } }).auth.jwt!.claims);
    expect(map({ sub: 'a', realm_access: { roles: ['r1', 'r2'] } }, { alg: 'RS256' }).roles).toEqual(['r1', 'r2']);
    expect(map({ sub: 'a', realm_access: { roles: 'solo' } }, { alg: 'RS256' }).roles).toEqual(['solo']);
    expect(map({ sub: 'a' }, { alg: 'RS256' }).roles).toEqual([]);
  });
});

describe('verified-token cache', () => {
  it('skips key lookup and jose on a hit, and never keeps an entry past exp', async () => {
    const config = validateConfig({ auth: { jwt: { keyFiles: [] } } }).auth.jwt!;
    const keyring = createKeyring({ staticKeys: [importJwk(jwk1, 'test')] });
    const resolve = vi.spyOn(keyring, 'resolve');
    const verifier = createJwtVerifier(config, { keyring, now });
    const token = await sign(claims({ exp: nowS() + 60 }), rsa1.privateKey);

    const first = await verifier.verify(token);
    expect(await verifier.verify(token)).toBe(first);
    expect(resolve).toHaveBeenCalledTimes(1);

    clock += 59_000;
    await verifier.verify(token);
    expect(resolve).toHaveBeenCalledTimes(1);
    // One second past exp: the entry is gone; jose verifies again (and the 30 s skew still accepts).
    clock += 2_000;
    await verifier.verify(token);
    expect(resolve).toHaveBeenCalledTimes(2);
    // Past exp plus skew: expired, even though it was cached before.
    clock += 30_000;
    await expect(verifier.verify(token)).rejects.toMatchObject({ code: 'SIDECAR_TOKEN_EXPIRED' });
    expect(verifier.cache.size).toBe(0);
  });

  it('is off with cacheSize 0, and does not cache refused tokens', async () => {
    const config = validateConfig({ auth: { jwt: { cacheSize: 0 } } }).auth.jwt!;
    const keyring = createKeyring({ staticKeys: [importJwk(jwk1, 'test')] });
    const resolve = vi.spyOn(keyring, 'resolve');
    const verifier = createJwtVerifier(config, { keyring, now });
    const token = await sign(claims(), rsa1.privateKey);
    await verifier.verify(token);
    await verifier.verify(token);
    expect(resolve).toHaveBeenCalledTimes(2);
    const refresh = await sign(claims({ type: 'refresh' }), rsa1.privateKey);
    const cached = createJwtVerifier({ ...config, cacheSize: 100 }, { keyring, now });
    await expect(cached.verify(refresh)).rejects.toMatchObject({ code: 'SIDECAR_TOKEN_TYPE_REFUSED' });
    expect(cached.cache.size).toBe(0);
  });
});
