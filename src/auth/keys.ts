import { createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readTextCapped } from '../files/index.ts';

/** A public verification key, imported once; `kid` and `alg` come from its JWK when present. */
export interface VerificationKey {
  key: KeyObject;
  kid?: string | undefined;
  /** The JWK's `alg`: the key then verifies only that algorithm (RFC 7517 §4.4). */
  alg?: string | undefined;
  /** Where it came from, for logs: a file path or the JWKS URL. */
  source: string;
}

const CURVE_OF: Record<string, string> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

/**
 * Whether `key` may verify `alg`. Checked before a key is handed to jose so that a key of
 * one type is never tried under another algorithm's rules (the RS256/HS256 confusion).
 */
export function keyFitsAlgorithm(k: VerificationKey, alg: string): boolean {
  if (k.alg !== undefined && k.alg !== alg) return false;
  const type = k.key.asymmetricKeyType;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return type === 'rsa';
  if (alg.startsWith('ES')) return type === 'ec' && k.key.asymmetricKeyDetails?.namedCurve === CURVE_OF[alg];
  if (alg === 'EdDSA') return type === 'ed25519' || type === 'ed448';
  return false;
}

/**
 * Imports one JWK as a public key. Symmetric (`oct`) keys are refused: shared secrets come
 * only from auth.jwt.secret, never from a key file or a remote JWKS. Keys marked for
 * encryption (`use: enc`) are skipped by the caller.
 */
export function importJwk(jwk: JsonWebKey & { kid?: unknown; alg?: unknown; use?: unknown }, source: string): VerificationKey {
  if (typeof jwk.kty !== 'string') throw new TypeError('a JWK needs a "kty"');
  if (jwk.kty === 'oct') throw new TypeError('symmetric (oct) keys are not accepted here; use auth.jwt.secret');
  // createPublicKey also accepts a private JWK and derives its public half; we keep only that.
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  return {
    key,
    kid: typeof jwk.kid === 'string' ? jwk.kid : undefined,
    alg: typeof jwk.alg === 'string' ? jwk.alg : undefined,
    source,
  };
}

/** Imports every usable signing key of a JWKS document; returns the keys and the problems. */
export function importJwks(doc: unknown, source: string): { keys: VerificationKey[]; problems: string[] } {
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    return { keys: [], problems: ['not a JWKS document (no "keys" array)'] };
  }
  const keys: VerificationKey[] = [];
  const problems: string[] = [];
  for (const [i, jwk] of (doc as { keys: unknown[] }).keys.entries()) {
    if (typeof jwk !== 'object' || jwk === null) {
      problems.push(`keys[${i}] is not an object`);
      continue;
    }
    if ((jwk as { use?: unknown }).use !== undefined && (jwk as { use?: unknown }).use !== 'sig') continue;
    try {
      keys.push(importJwk(jwk as JsonWebKey, source));
    } catch (err) {
      problems.push(`keys[${i}]: ${(err as Error).message}`);
    }
  }
  return { keys, problems };
}

/**
 * Reads auth.jwt.keyFiles: PEM public keys (SPKI), PEM certificates, a JWK or a JWKS JSON.
 * Private keys are refused: the sidecar verifies and must not hold signing material.
 * Throws SIDECAR_CONFIG_INVALID naming the file, so a bad key stops the start.
 */
export function loadKeyFiles(files: readonly string[]): VerificationKey[] {
  const keys: VerificationKey[] = [];
  for (const [i, file] of files.entries()) {
    const fail = (why: string, cause?: unknown) => new SidecarError('SIDECAR_CONFIG_INVALID', { message: `auth.jwt.keyFiles[${i}] (${file}): ${why}`, cause });
    let text: string;
    try {
      text = readTextCapped(file, FILE_LIMITS.jwtKey);
    } catch (cause) {
      throw fail(`cannot be read: ${(cause as Error).message}`, cause);
    }
    try {
      keys.push(...parseKeyText(text, file));
    } catch (cause) {
      throw cause instanceof SidecarError ? cause : fail((cause as Error).message, cause);
    }
  }
  return keys;
}

function parseKeyText(text: string, source: string): VerificationKey[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const doc = JSON.parse(trimmed) as Record<string, unknown>;
    if (Array.isArray(doc.keys)) {
      const { keys, problems } = importJwks(doc, source);
      if (problems.length > 0) throw new Error(problems.join('; '));
      if (keys.length === 0) throw new Error('the JWKS holds no signing key');
      return keys;
    }
    return [importJwk(doc as JsonWebKey, source)];
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(trimmed)) {
    throw new Error('holds a private key; give the public key (openssl pkey -pubout) instead');
  }
  const pems = trimmed.match(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g);
  if (!pems) throw new Error('is neither PEM nor JSON (JWK or JWKS)');
  return pems.map((pem) => ({
    key: pem.startsWith('-----BEGIN CERTIFICATE-----') ? new X509Certificate(pem).publicKey : createPublicKey(pem),
    source,
  }));
}
