import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys look like `sk_sidecar_<id>_<secret>`: the id is public (lookups, logs, the
 * x-auth-key-id header), the secret is 32 random bytes in base64url. Only the SHA-256 of
 * the whole key is stored. A fast unsalted hash is enough here, unlike for passwords:
 * with 256 bits of entropy there is nothing to brute-force or look up in a table, and a
 * slow KDF would only cost CPU on every request.
 */
export const API_KEY_PREFIX = 'sk_sidecar_';
const SECRET_BYTES = 32;
const KEY_FORMAT = /^sk_sidecar_([a-z0-9]{8,32})_([A-Za-z0-9_-]{43})$/;

export interface NewApiKey {
  /** The full key: shown once to the operator, never stored. */
  key: string;
  id: string;
  /** Hex SHA-256 of `key`. */
  hash: string;
}

/** Mints a fresh key and its hash. */
export function generateApiKey(): NewApiKey {
  const id = randomBytes(6).toString('hex');
  const key = `${API_KEY_PREFIX}${id}_${randomBytes(SECRET_BYTES).toString('base64url')}`;
  return { key, id, hash: hashApiKey(key) };
}

/** The id part of a well-formed key, or undefined. */
export function apiKeyId(key: string): string | undefined {
  return KEY_FORMAT.exec(key)?.[1];
}

/** Hex SHA-256 of a key, as stored in records. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/**
 * Compares a presented key's hash with a stored one in constant time. Both sides are
 * fixed-length digests, so timingSafeEqual never sees unequal lengths and the time taken
 * says nothing about how many leading characters matched.
 */
export function hashesEqual(presentedHash: string, storedHash: string): boolean {
  const a = Buffer.from(presentedHash, 'hex');
  const b = Buffer.from(storedHash, 'hex');
  if (a.length !== 32 || b.length !== 32) return false;
  return timingSafeEqual(a, b);
}
