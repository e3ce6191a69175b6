import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AUTH_AUDIENCE, type AuthFixture } from './auth.ts';
import { freePort, HOST, waitFor200 } from './net.ts';
import { startChild } from './procs.ts';
import type { Server } from './servers.ts';

/**
 * The `oauth2-proxy` target: a real peer doing the sidecar-auth job. oauth2-proxy (built with
 * `go install`, see tools.ts) as a reverse proxy in front of the same upstream, accepting the
 * same RS256 bearer tokens, verified against the bench's OIDC discovery document and JWKS,
 * and admitting only the analyst role, as the RBAC policy does for the measured route.
 */

/** The command line, without the binary: every flag is part of the peer's configuration (bench/README.md lists them). */
export function oauth2ProxyArgs(o: { listen: string; upstream: string; issuer: string; cookieSecret: string; roles: readonly string[] }): string[] {
  return [
    `--http-address=${o.listen}`,
    // Reverse-proxy mode: requests that pass go to the upstream (not nginx auth_request mode).
    `--upstream=${o.upstream}`,
    '--reverse-proxy',
    `--trusted-proxy-ip=${HOST}/32`,
    // OIDC provider found by discovery at the issuer; the token's aud must be the client id.
    '--provider=oidc',
    `--oidc-issuer-url=${o.issuer}`,
    `--client-id=${AUTH_AUDIENCE}`,
    '--client-secret=unused-no-login-flow',
    // Bearer JWTs are verified and become the session; an invalid one is refused (403), not sent to a login page.
    '--skip-jwt-bearer-tokens',
    '--bearer-token-login-fallback=false',
    // No token: 401 with a JSON error rather than the sign-in page (an API, like the sidecar).
    '--force-json-errors',
    // Authorization: the roles claim as groups; only the measured caller's role admitted (what the policy allows on the measured route).
    '--oidc-groups-claim=roles',
    ...o.roles.map((r) => `--allowed-group=${r}`),
    // Any subject (the token has no email; the user is the sub).
    '--email-domain=*',
    // Sessions are cookies, unused with bearer tokens, but the secret is required; plain HTTP on loopback.
    `--cookie-secret=${o.cookieSecret}`,
    '--cookie-secure=false',
    // No per-request log lines: sidecar-auth runs at log.level warn and writes none either.
    '--request-logging=false',
    '--auth-logging=false',
    '--silence-ping-logging',
  ];
}

export async function startOauth2Proxy(
  bin: string,
  dir: string,
  upstream: Server,
  auth: AuthFixture,
  roles: readonly string[],
  cpus: string | undefined,
): Promise<Server> {
  const port = await freePort();
  const args = oauth2ProxyArgs({
    listen: `${HOST}:${port}`,
    upstream: upstream.url,
    issuer: auth.issuer,
    roles,
    // 32 characters: an AES-256 key as oauth2-proxy wants it.
    cookieSecret: randomBytes(16).toString('hex'),
  });
  writeFileSync(
    join(dir, 'oauth2-proxy.args'),
    `${args.map((a) => (a.startsWith('--cookie-secret=') ? '--cookie-secret=<random 32 characters>' : a)).join('\n')}\n`,
  );
  const child = startChild('oauth2-proxy', bin, args, { cpus });
  const url = `http://${HOST}:${port}/`;
  await waitFor200(`${url}ping`, child);
  return { name: 'oauth2-proxy', url, child };
}
