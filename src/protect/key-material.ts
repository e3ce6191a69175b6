import { scrypt } from 'node:crypto';
import { promisify } from 'node:util';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readTextCapped } from '../files/index.ts';

export const KEY_BYTES = 32;
// scrypt cost: N=2^15, r=8 (32 MiB, about 0.1 s once at start), per RFC 7914 and OWASP's minimum.
export const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number, options: typeof SCRYPT) => Promise<Buffer>;

/** Where one key comes from (the schema guarantees exactly one source). */
export interface KeySource {
  env?: string | undefined;
  file?: string | undefined;
  passphraseEnv?: string | undefined;
  salt?: string | undefined;
  /** Inline key material (key ring files only). */
  key?: string | undefined;
}

const HEX = /^[0-9a-fA-F]{64}$/;
const B64 = /^[A-Za-z0-9+/_-]{43}={0,1}$/;

/** 32 bytes written as hex, base64 or base64url; anything else is refused, never padded or cut. */
export function decodeKey(text: string, where: string): Buffer {
  const t = text.trim();
  const bytes = HEX.test(t)
    ? Buffer.from(t, 'hex')
    : B64.test(t)
      ? Buffer.from(t.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url')
      : undefined;
  if (bytes === undefined || bytes.length !== KEY_BYTES) {
    throw keysInvalid(`${where}: expected ${KEY_BYTES} random bytes as base64, base64url or hex (agent-sidecar keys generate prints one)`);
  }
  return bytes;
}

/** Reads a key from its source; a passphrase goes through scrypt with its salt. */
export async function loadKey(source: KeySource, name: string, env: NodeJS.ProcessEnv): Promise<Buffer> {
  if (source.key !== undefined) return decodeKey(source.key, name);
  if (source.env !== undefined) {
    const value = env[source.env];
    if (value === undefined || value === '') throw keysInvalid(`${name}: the environment variable ${source.env} is not set`);
    return decodeKey(value, `${name} (${source.env})`);
  }
  if (source.file !== undefined) {
    let text: string;
    try {
      text = readTextCapped(source.file, FILE_LIMITS.protectionKey);
    } catch (cause) {
      throw keysInvalid(`${name}: cannot read ${source.file}: ${(cause as Error).message}`, cause);
    }
    return decodeKey(text, `${name} (${source.file})`);
  }
  if (source.passphraseEnv !== undefined && source.salt !== undefined) {
    const passphrase = env[source.passphraseEnv];
    if (passphrase === undefined || passphrase.length < 12)
      throw keysInvalid(`${name}: ${source.passphraseEnv} must hold a passphrase of at least 12 characters`);
    return deriveKey(passphrase, source.salt);
  }
  throw keysInvalid(`${name}: no key source (env, file, passphraseEnv with salt, or key)`);
}

/** scrypt(passphrase, salt): the only way a passphrase becomes a key. */
export function deriveKey(passphrase: string, salt: string): Promise<Buffer> {
  const saltBytes = Buffer.from(salt, 'base64url');
  if (saltBytes.length < 16) throw keysInvalid('a passphrase salt must be at least 16 random bytes');
  return scryptAsync(passphrase.normalize('NFC'), saltBytes, KEY_BYTES, SCRYPT);
}

export function keysInvalid(message: string, cause?: unknown): SidecarError {
  return new SidecarError('SIDECAR_PROTECTION_KEYS_INVALID', { message, cause });
}
