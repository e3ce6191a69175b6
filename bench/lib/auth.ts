import http, { type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { HOST } from './net.ts';

/**
 * The identity side of `--scenario auth`: an RSA key pair, its public half served as a JWKS
 * from this process, and one RS256 access token for a caller with the analyst role.
 */

export const AUTH_ISSUER = 'https://issuer.bench.invalid/';
export const AUTH_AUDIENCE = 'agent-sidecar-bench';
/** A route the default policy opens to analyst (GET needs view:agent). */
export const AUTH_PATH = '/api/v1/agents';
export const AUTH_ROLES = ['analyst'];

export interface AuthFixture {
  jwksUrl: string;
  /** The compact JWS, without "Bearer ". */
  token: string;
  kid: string;
  close(): Promise<void>;
}

export async function startAuthFixture(): Promise<AuthFixture> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const kid = `bench-${Date.now().toString(36)}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const jwks = JSON.stringify({ keys: [jwk] });
  const token = await new SignJWT({ roles: AUTH_ROLES })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setSubject('bench-analyst')
    .setIssuer(AUTH_ISSUER)
    .setAudience(AUTH_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('24h')
    .sign(privateKey);

  const server: HttpServer = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'content-length': Buffer.byteLength(jwks) }).end(jwks);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    jwksUrl: `http://${HOST}:${port}/.well-known/jwks.json`,
    token,
    kid,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The sidecar-auth configuration on top of the defaults: JWKS-verified RS256 tokens and an RBAC policy file. */
export function sidecarAuthConfig(fixture: AuthFixture, policyFile: string): string {
  return `auth:
  jwt:
    jwksUrl: ${fixture.jwksUrl}
    algorithms: [RS256]
    issuer: ${AUTH_ISSUER}
    audience: ${AUTH_AUDIENCE}
policy:
  file: ${policyFile}
`;
}
