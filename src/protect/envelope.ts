import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SidecarError } from '../errors/index.ts';

/**
 * Encrypted values are self-describing: `enc:v1:<key id>:<base64url(type ‖ iv ‖ ciphertext ‖ tag)>`,
 * AES-256-GCM with a random 96-bit IV per value. The version, the key id and the type byte are
 * bound as additional authenticated data, so none of them can be swapped without the tag failing.
 * Random IVs keep a key safe for 2^32 values (NIST SP 800-38D 8.3): rotate well before that.
 */
export const ENVELOPE_PREFIX = 'enc:v1:';
/** What the plaintext was: a string ('t') or the JSON text of another value ('j'). */
export type PlaintextType = 't' | 'j';
const IV = 12;
const TAG = 16;
export const ENVELOPE_PATTERN = /enc:v1:[A-Za-z0-9][\w.-]{0,63}:[A-Za-z0-9_-]{38,}/g;

export function seal(key: Buffer, kid: string, type: PlaintextType, plaintext: string): string {
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad(kid, type));
  const body = Buffer.concat([Buffer.from(type), iv, cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `${ENVELOPE_PREFIX}${kid}:${body.toString('base64url')}`;
}

/** The key id of an envelope, or a SidecarError when the text is not one. */
export function envelopeKeyId(envelope: string): string {
  if (!envelope.startsWith(ENVELOPE_PREFIX)) throw notEnvelope();
  const colon = envelope.indexOf(':', ENVELOPE_PREFIX.length);
  if (colon <= ENVELOPE_PREFIX.length) throw notEnvelope();
  return envelope.slice(ENVELOPE_PREFIX.length, colon);
}

export function open(key: Buffer, envelope: string): { type: PlaintextType; plaintext: string } {
  const kid = envelopeKeyId(envelope);
  const encoded = envelope.slice(ENVELOPE_PREFIX.length + kid.length + 1);
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) throw notEnvelope();
  const body = Buffer.from(encoded, 'base64url');
  const type = String.fromCharCode(body[0] ?? 0);
  if ((type !== 't' && type !== 'j') || body.length < 1 + IV + TAG) throw notEnvelope();
  const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(1, 1 + IV), { authTagLength: TAG });
  decipher.setAAD(aad(kid, type));
  decipher.setAuthTag(body.subarray(body.length - TAG));
  try {
    const plaintext = Buffer.concat([decipher.update(body.subarray(1 + IV, body.length - TAG)), decipher.final()]).toString('utf8');
    return { type, plaintext };
  } catch (cause) {
    throw new SidecarError('SIDECAR_DECRYPT_FAILED', {
      message: `the value encrypted with key ${kid} does not decrypt: it was altered, or encrypted with another key of that id`,
      cause,
    });
  }
}

function aad(kid: string, type: PlaintextType): Buffer {
  return Buffer.from(`${ENVELOPE_PREFIX}${kid}:${type}`);
}

function notEnvelope(): SidecarError {
  return new SidecarError('SIDECAR_ENVELOPE_INVALID');
}
