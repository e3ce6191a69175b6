import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/index.ts';
import { SidecarError } from '../src/errors/index.ts';
import { createLogger } from '../src/log/index.ts';
import { createKeyRing, createProtection, decodeKey, deriveKey, loadKeyRing, writeRingFile } from '../src/protect/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'protect-keys-'));

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SidecarError);
    return (err as SidecarError).code;
  }
  throw new Error('expected an error');
}

async function asyncCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as SidecarError).code;
  }
  throw new Error('expected an error');
}

describe('envelopes', () => {
  const k1 = randomBytes(32);
  const ring = createKeyRing(new Map([['k1', k1]]), 'k1');

  it('round-trips text, with a fresh IV each time, in a self-describing envelope', () => {
    const a = ring.encrypt('t', 'bob@example.com');
    const b = ring.encrypt('t', 'bob@example.com');
    expect(a).toMatch(/^enc:v1:k1:[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(ring.decrypt(a)).toEqual({ type: 't', plaintext: 'bob@example.com' });
    expect(ring.decrypt(ring.encrypt('j', '{"n":1}'))).toEqual({ type: 'j', plaintext: '{"n":1}' });
  });

  it('refuses an altered envelope: ciphertext, tag, type byte or key id', () => {
    const sealed = ring.encrypt('t', 'top secret');
    const body = Buffer.from(sealed.slice('enc:v1:k1:'.length), 'base64url');
    const flip = (i: number) => {
      const copy = Buffer.from(body);
      copy[i] = copy[i]! ^ 1;
      return `enc:v1:k1:${copy.toString('base64url')}`;
    };
    expect(code(() => ring.decrypt(flip(20)))).toBe('SIDECAR_DECRYPT_FAILED'); // ciphertext
    expect(code(() => ring.decrypt(flip(body.length - 1)))).toBe('SIDECAR_DECRYPT_FAILED'); // tag
    const retyped = Buffer.from(body);
    retyped[0] = 'j'.charCodeAt(0);
    expect(code(() => ring.decrypt(`enc:v1:k1:${retyped.toString('base64url')}`))).toBe('SIDECAR_DECRYPT_FAILED'); // type is bound as AAD
    const other = createKeyRing(
      new Map([
        ['k1', k1],
        ['k2', k1],
      ]),
      'k1',
    );
    expect(code(() => other.decrypt(sealed.replace('enc:v1:k1:', 'enc:v1:k2:')))).toBe('SIDECAR_DECRYPT_FAILED'); // key id is bound as AAD
    expect(code(() => ring.decrypt('enc:v1:k1:short'))).toBe('SIDECAR_ENVELOPE_INVALID');
    expect(code(() => ring.decrypt('not an envelope'))).toBe('SIDECAR_ENVELOPE_INVALID');
  });

  it('refuses a wrong key (same id, other bytes) and an unknown key id', () => {
    const sealed = ring.encrypt('t', 'x');
    const wrong = createKeyRing(new Map([['k1', randomBytes(32)]]), 'k1');
    expect(code(() => wrong.decrypt(sealed))).toBe('SIDECAR_DECRYPT_FAILED');
    const unknown = createKeyRing(new Map([['k9', k1]]), 'k9');
    expect(code(() => unknown.decrypt(sealed))).toBe('SIDECAR_ENCRYPTION_KEY_UNKNOWN');
  });
});

describe('key material', () => {
  it('reads 32 bytes as hex, base64 or base64url and refuses anything else', () => {
    const bytes = randomBytes(32);
    for (const text of [bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url'), `${bytes.toString('base64url')}\n`]) {
      expect(decodeKey(text, 'k').equals(bytes)).toBe(true);
    }
    expect(code(() => decodeKey(randomBytes(16).toString('hex'), 'k'))).toBe('SIDECAR_PROTECTION_KEYS_INVALID');
    expect(code(() => decodeKey('correct horse battery staple', 'k'))).toBe('SIDECAR_PROTECTION_KEYS_INVALID');
  });

  it('derives a passphrase key with scrypt: the same salt gives the same key, another salt another one', async () => {
    const salt = randomBytes(16).toString('base64url');
    const a = await deriveKey('a long enough passphrase', salt);
    expect(a).toHaveLength(32);
    expect((await deriveKey('a long enough passphrase', salt)).equals(a)).toBe(true);
    expect((await deriveKey('a long enough passphrase', randomBytes(16).toString('base64url'))).equals(a)).toBe(false);
    const ring = await loadKeyRing(
      { ring: [{ id: 'p1', passphraseEnv: 'PASS', salt }], active: undefined, file: undefined },
      { PASS: 'a long enough passphrase' },
    );
    const again = await loadKeyRing(
      { ring: [{ id: 'p1', passphraseEnv: 'PASS', salt }], active: undefined, file: undefined },
      { PASS: 'a long enough passphrase' },
    );
    expect(again.decrypt(ring.encrypt('t', 'hello')).plaintext).toBe('hello');
    expect(await asyncCode(loadKeyRing({ ring: [{ id: 'p1', passphraseEnv: 'PASS', salt }], active: undefined, file: undefined }, { PASS: 'short' }))).toBe(
      'SIDECAR_PROTECTION_KEYS_INVALID',
    );
  });

  it('refuses a missing environment variable or file at start', async () => {
    expect(await asyncCode(loadKeyRing({ ring: [{ id: 'a', env: 'NOPE' }], active: undefined, file: undefined }, {}))).toBe('SIDECAR_PROTECTION_KEYS_INVALID');
    expect(await asyncCode(loadKeyRing({ ring: [{ id: 'a', file: join(dir, 'missing') }], active: undefined, file: undefined }, {}))).toBe(
      'SIDECAR_PROTECTION_KEYS_INVALID',
    );
  });
});

describe('rotation', () => {
  it('keeps old values readable after rotation, encrypts new ones with the new key, on reload without a restart', async () => {
    const file = join(dir, 'ring.yaml');
    const k1 = randomBytes(32).toString('base64url');
    writeRingFile(file, { active: 'k1', keys: [{ id: 'k1', key: k1 }] });
    const config = validateConfig({
      protection: { rules: { default: { detectors: { email: 'encrypt' } } }, keys: { file } },
    });
    const protection = await createProtection(config, createLogger('silent'));
    const p = protection.ruleSet('default');
    const before = p.text('bob@example.com');
    expect(before.startsWith('enc:v1:k1:')).toBe(true);

    // Step 1: the new key is added (not active yet): every instance can read it before anyone writes it.
    const k2 = randomBytes(32).toString('base64url');
    writeRingFile(file, {
      active: 'k1',
      keys: [
        { id: 'k2', key: k2 },
        { id: 'k1', key: k1 },
      ],
    });
    await protection.reload();
    expect(p.text('bob@example.com').startsWith('enc:v1:k1:')).toBe(true);
    // Step 2: activated.
    writeRingFile(file, {
      active: 'k2',
      keys: [
        { id: 'k2', key: k2 },
        { id: 'k1', key: k1 },
      ],
    });
    await protection.reload();
    const after = p.text('bob@example.com');
    expect(after.startsWith('enc:v1:k2:')).toBe(true);
    expect(protection.keys()!.decrypt(before).plaintext).toBe('bob@example.com');
    expect(protection.keys()!.decrypt(after).plaintext).toBe('bob@example.com');

    // A broken ring is refused; the running keys stay.
    writeFileSync(file, 'active: k3\nkeys: [{ id: k3, key: not-a-key }]\n');
    await protection.reload();
    expect(protection.keys()!.activeId).toBe('k2');
    expect(protection.keys()!.decrypt(before).plaintext).toBe('bob@example.com');
  });
});
