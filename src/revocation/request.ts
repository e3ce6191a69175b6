import { SidecarError } from '../errors/index.ts';

/** What POST /revoke accepts; the CLI builds the same thing from its flags. */
export type RevokeRequest = { kind: 'token'; jti: string; exp: number } | { kind: 'subject'; sub: string; before: number };

const MAX_ID_LENGTH = 512;
// Past this a number is in milliseconds (year 2286 in seconds): a common slip.
const MAX_UNIX_SECONDS = 10_000_000_000;

const bad = (message: string, field?: string) =>
  new SidecarError('SIDECAR_BAD_ADMIN_REQUEST', { message, details: field === undefined ? undefined : { field } });

function unixSeconds(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw bad(`${field} must be a positive integer: unix time in seconds.`, field);
  if (v >= MAX_UNIX_SECONDS) throw bad(`${field} looks like milliseconds; give unix time in seconds.`, field);
  return v;
}

function id(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_LENGTH)
    throw bad(`${field} must be a non-empty string of at most ${MAX_ID_LENGTH} characters.`, field);
  return v;
}

/**
 * Validates `{ "jti": "…", "exp": 1234 }` or `{ "sub": "alice", "before": 1234 }`
 * (`before` defaults to `nowSeconds`). Throws SIDECAR_BAD_ADMIN_REQUEST naming the field.
 */
export function parseRevokeRequest(body: unknown, nowSeconds: number): RevokeRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('The body must be a JSON object: {"jti", "exp"} or {"sub", "before"}.');
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !['jti', 'exp', 'sub', 'before'].includes(k));
  if (unknown.length > 0) throw bad(`Unknown field ${unknown[0]}; expected {"jti", "exp"} or {"sub", "before"}.`, unknown[0]);
  const hasJti = fields.jti !== undefined;
  const hasSub = fields.sub !== undefined;
  if (hasJti === hasSub) throw bad('Give exactly one of jti (with exp) or sub (with an optional before).');
  if (hasJti) {
    if (fields.before !== undefined) throw bad('before goes with sub, not with jti.', 'before');
    if (fields.exp === undefined) throw bad("exp is required with jti: the token's exp claim, so the entry expires with the token.", 'exp');
    return { kind: 'token', jti: id(fields.jti, 'jti'), exp: unixSeconds(fields.exp, 'exp') };
  }
  if (fields.exp !== undefined) throw bad('exp goes with jti, not with sub.', 'exp');
  return { kind: 'subject', sub: id(fields.sub, 'sub'), before: fields.before === undefined ? nowSeconds : unixSeconds(fields.before, 'before') };
}
