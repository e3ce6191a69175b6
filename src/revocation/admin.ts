import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuditSink } from '../audit/index.ts';
import { SidecarError, isSidecarError, sendError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { parseRevokeRequest } from './request.ts';
import type { RevocationStore, Revoked } from './store.ts';

export interface RevocationAdminOptions {
  store: RevocationStore;
  /** admin.token: a caller presenting it as `Authorization: Bearer …` is allowed. */
  adminToken?: string | undefined;
  /**
   * Any other caller: resolve to the subject of a principal allowed to revoke, or to
   * undefined when it is authenticated but not allowed (403). Throw a SidecarError for
   * credentials that are bad (401); it is answered as is.
   */
  authorize: (req: IncomingMessage) => Promise<string | undefined>;
  audit: AuditSink;
  logger?: Logger | undefined;
  now?: () => number;
}

const MAX_BODY_BYTES = 4096;

/**
 * The admin API for revocation: `POST /revoke` with `{ "jti", "exp" }` or
 * `{ "sub", "before"? }`. Answers 200 with `{ "revoked": … }` (and `"replicated"` when
 * replicas are waited for); 400, 401, 403, 404, 413
 * or 503 with the usual error body. Every revocation is a `sensitive_operation` audit event.
 *
 * @example
 * const revokeApi = createRevocationAdmin({ store, adminToken: config.admin.token, authorize, audit });
 * // on the admin listener: if (path === '/revoke') return revokeApi(req, res);
 */
export function createRevocationAdmin(options: RevocationAdminOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { store, authorize, audit } = options;
  const now = options.now ?? Date.now;
  // Comparing digests keeps timingSafeEqual's equal-length precondition without leaking the length.
  const tokenDigest = options.adminToken === undefined ? undefined : sha256(options.adminToken);

  async function identify(req: IncomingMessage): Promise<string> {
    const header = req.headers.authorization;
    const bearer = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
    if (bearer !== undefined && tokenDigest !== undefined && timingSafeEqual(sha256(bearer), tokenDigest)) return 'admin-token';
    const subject = await authorize(req);
    if (subject !== undefined) return subject;
    if (header === undefined) throw new SidecarError('SIDECAR_CREDENTIALS_MISSING', { headers: { 'www-authenticate': 'Bearer realm="agent-sidecar-admin"' } });
    throw new SidecarError('SIDECAR_FORBIDDEN', { details: { required: 'admin.token or manage:users' } });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/revoke' || req.method !== 'POST') throw new SidecarError('SIDECAR_NOT_FOUND');
    const actor = await identify(req);
    const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
    if (type !== 'application/json') throw new SidecarError('SIDECAR_BAD_ADMIN_REQUEST', { message: 'Send the body as Content-Type: application/json.' });
    const request = parseRevokeRequest(await readJson(req), Math.floor(now() / 1000));
    let result: Revoked;
    try {
      result = request.kind === 'token' ? await store.revokeToken(request.jti, request.exp) : await store.revokeSubject(request.sub, request.before);
    } catch (err) {
      throw isSidecarError(err) ? err : new SidecarError('SIDECAR_STORE_UNAVAILABLE', { cause: err });
    }
    const revoked = request.kind === 'token' ? { jti: request.jti, exp: request.exp } : { sub: request.sub, before: request.before };
    audit.emit({
      event_type: 'sensitive_operation',
      user_id: actor,
      operation: request.kind === 'token' ? 'revoke_token' : 'revoke_subject',
      details: revoked,
    });
    if (result.replicated === false) {
      options.logger?.warn(
        { event_type: 'revocation_not_replicated', ...revoked },
        'revocation stored on the Redis primary only: no replica confirmed it in time, and a failover now would lose it; revoke again after one',
      );
    }
    const body = JSON.stringify({ revoked, ...(result.replicated === undefined ? {} : { replicated: result.replicated }) });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!isSidecarError(err)) options.logger?.error({ err }, 'revocation admin request failed');
      const error = isSidecarError(err) ? err : new SidecarError('SIDECAR_INTERNAL', { cause: err });
      // The body may be unread (refused before reading it): close rather than parse leftovers.
      if (!req.complete) res.setHeader('connection', 'close');
      sendError(res, error, undefined);
    });
  };
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new SidecarError('SIDECAR_BODY_TOO_LARGE', { message: `A revocation request is at most ${MAX_BODY_BYTES} bytes.` });
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new SidecarError('SIDECAR_BAD_ADMIN_REQUEST', { message: 'The body is not valid JSON.', cause: err });
  }
}
