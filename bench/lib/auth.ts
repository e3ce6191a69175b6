import http, { type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { HOST } from './net.ts';

/**
 * The identity side of the auth scenarios: an RSA key pair, its public half served as a JWKS
 * with an OpenID Connect discovery document from this process (the issuer is this server's
 * origin, so an OIDC client such as oauth2-proxy can discover it), and RS256 access tokens:
 * one for a caller with the analyst role, which every target gets, and one for a caller
 * with a role the measured route does not admit, to check that authorization is really on.
 */

export const AUTH_AUDIENCE = 'agent-sidecar-bench';
/** A route the default policy opens to analyst (GET needs view:agent). */
export const AUTH_PATH = '/api/v1/agents';
export const AUTH_ROLES = ['analyst'];
/** A role the reference policy knows that lacks view:agent. */
export const OTHER_ROLES = ['user'];
/** A role the reference policy lets POST to AUTH_PATH (create:agent): the protect scenario's caller. */
export const WRITER_ROLES = ['agent_manager'];
export const DISCOVERY_PATH = '/.well-known/openid-configuration';
export const JWKS_PATH = '/.well-known/jwks.json';

export interface AuthFixture {
  /** The issuer (iss of every token, issuer of the discovery document): this server's origin. */
  issuer: string;
  jwksUrl: string;
  discoveryUrl: string;
  /** The analyst's compact JWS, without "Bearer ". */
  token: string;
  /** A valid token for roles OTHER_ROLES. */
  otherRoleToken: string;
  /** A valid token for roles WRITER_ROLES. */
  writerToken: string;
  kid: string;
  /** Requests served so far per path (JWKS and discovery fetches: each verifier should cache them). */
  served(): Record<string, number>;
  close(): Promise<void>;
}

/** The discovery document: what an OIDC client needs to verify tokens (issuer, JWKS, algorithms) plus the fields the spec requires. */
export function discoveryDocument(issuer: string): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer}${JWKS_PATH}`,
    // Required by OpenID Connect Discovery; no login happens in the bench, so nothing serves them.
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
  };
}

function mint(privateKey: CryptoKey, kid: string, issuer: string, sub: string, roles: readonly string[]): Promise<string> {
  return new SignJWT({ roles })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setSubject(sub)
    .setIssuer(issuer)
    .setAudience(AUTH_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('24h')
    .sign(privateKey);
}

export async function startAuthFixture(): Promise<AuthFixture> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const kid = `bench-${Date.now().toString(36)}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const jwks = JSON.stringify({ keys: [jwk] });
  let discovery = '';
  const served: Record<string, number> = {};
  const server: HttpServer = http.createServer((req, res) => {
    served[req.url ?? ''] = (served[req.url ?? ''] ?? 0) + 1;
    const body = req.method !== 'GET' ? undefined : req.url === JWKS_PATH ? jwks : req.url === DISCOVERY_PATH ? discovery : undefined;
    if (body === undefined) res.writeHead(404).end();
    else
      res
        .writeHead(200, { 'content-type': req.url === JWKS_PATH ? 'application/jwk-set+json' : 'application/json', 'content-length': Buffer.byteLength(body) })
        .end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://${HOST}:${port}`;
  discovery = JSON.stringify(discoveryDocument(issuer));
  return {
    issuer,
    jwksUrl: `${issuer}${JWKS_PATH}`,
    discoveryUrl: `${issuer}${DISCOVERY_PATH}`,
    token: await mint(privateKey, kid, issuer, 'bench-analyst', AUTH_ROLES),
    otherRoleToken: await mint(privateKey, kid, issuer, 'bench-user', OTHER_ROLES),
    writerToken: await mint(privateKey, kid, issuer, 'bench-manager', WRITER_ROLES),
    kid,
    served: () => ({ ...served }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The sidecar-auth configuration on top of the defaults: JWKS-verified RS256 tokens and an RBAC policy file. */
export function sidecarAuthConfig(fixture: Pick<AuthFixture, 'issuer' | 'jwksUrl'>, policyFile: string): string {
  return `auth:
  jwt:
    jwksUrl: ${fixture.jwksUrl}
    algorithms: [RS256]
    issuer: ${fixture.issuer}
    audience: ${AUTH_AUDIENCE}
policy:
  file: ${policyFile}
`;
}
