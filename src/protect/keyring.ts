import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { z } from 'zod';
import { checkKeySource, keyEntryShape, KEY_ID_PATTERN, type ProtectionConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readTextCapped } from '../files/index.ts';
import { parseYaml, YamlError } from '../files/index.ts';
import { envelopeKeyId, open, seal, type PlaintextType } from './envelope.ts';
import { keysInvalid, loadKey } from './key-material.ts';

/** The keys that decrypt, and the one that encrypts new values. Immutable: a reload swaps the ring. */
export interface KeyRing {
  readonly activeId: string | undefined;
  readonly ids: readonly string[];
  /** An envelope under the active key. */
  encrypt(type: PlaintextType, plaintext: string): string;
  /** Throws SIDECAR_ENVELOPE_INVALID, SIDECAR_ENCRYPTION_KEY_UNKNOWN or SIDECAR_DECRYPT_FAILED; never returns garbage. */
  decrypt(envelope: string): { type: PlaintextType; plaintext: string };
}

/** A key ring file: `active` and `keys`, each key inline (`key`) or from env, a file or a passphrase. */
export const ringFileSchema = z.strictObject({
  active: z.string().regex(KEY_ID_PATTERN).optional(),
  keys: z
    .array(
      z.strictObject({ ...keyEntryShape, key: z.string().min(1).optional(), created: z.string().optional() }).superRefine((k, ctx) => {
        if (k.key === undefined) checkKeySource(k, ctx);
        else if (k.env !== undefined || k.file !== undefined || k.passphraseEnv !== undefined)
          ctx.addIssue({ code: 'custom', message: 'a key given inline has no other source' });
      }),
    )
    .default([]),
});
export type RingFile = z.output<typeof ringFileSchema>;

/** Reads and validates a key ring file; `key` names the setting that gave the path, for the messages. */
export function readRingFile(file: string, options: { missingOk?: boolean; key?: string } = {}): RingFile {
  const name = options.key === undefined ? file : `${file} (${options.key})`;
  let text: string;
  try {
    text = readTextCapped(file, FILE_LIMITS.keyRing);
  } catch (cause) {
    if (options.missingOk && (cause as NodeJS.ErrnoException).code === 'ENOENT') return { keys: [] };
    throw keysInvalid(`cannot read the key ring ${name}: ${(cause as Error).message}`, cause);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: false });
  } catch (err) {
    if (!(err instanceof YamlError)) throw err;
    throw keysInvalid(`${name} is not valid YAML: ${err.problems[0]}`);
  }
  const parsed = ringFileSchema.safeParse(doc ?? {});
  if (!parsed.success) {
    throw keysInvalid(`${name} is not a valid key ring: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** Writes the ring atomically, readable by its owner only. */
export function writeRingFile(file: string, ring: RingFile): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `# agent-sidecar protection key ring: secret, keep it mode 0600\n${stringify(ring)}`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/** Builds the ring from the configuration's keys and the ring file, reading every key once. */
export async function loadKeyRing(keys: ProtectionConfig['keys'], env: NodeJS.ProcessEnv = process.env): Promise<KeyRing> {
  const file = keys.file === undefined ? undefined : readRingFile(keys.file, { key: 'protection.keys.file' });
  // Each key named by where it is written: the ring file, or protection.keys.ring.
  const entries = [
    ...(file?.keys ?? []).map((k) => [k, `key ${k.id} of ${keys.file}`] as const),
    ...keys.ring.map((k, i) => [k, `protection.keys.ring[${i}] (key ${k.id})`] as const),
  ];
  const material = new Map<string, Buffer>();
  for (const [entry, name] of entries) {
    if (material.has(entry.id)) throw keysInvalid(`the key id ${entry.id} appears twice (key ring file and protection.keys.ring)`);
    material.set(entry.id, await loadKey(entry, name, env));
  }
  const activeId = file?.active ?? keys.active ?? entries[0]?.[0].id;
  if (activeId !== undefined && !material.has(activeId)) throw keysInvalid(`the active key ${activeId} is not in the key ring`);
  return createKeyRing(material, activeId);
}

export function createKeyRing(material: ReadonlyMap<string, Buffer>, activeId: string | undefined): KeyRing {
  const active = activeId === undefined ? undefined : material.get(activeId);
  return Object.freeze({
    activeId,
    ids: Object.freeze([...material.keys()]),
    encrypt(type: PlaintextType, plaintext: string) {
      if (active === undefined) throw keysInvalid('no active encryption key: configure protection.keys');
      return seal(active, activeId!, type, plaintext);
    },
    decrypt(envelope: string) {
      const kid = envelopeKeyId(envelope);
      const key = material.get(kid);
      if (key === undefined)
        throw new SidecarError('SIDECAR_ENCRYPTION_KEY_UNKNOWN', {
          message: `no key with id ${kid} in the key ring; put the retired key back to decrypt this value`,
        });
      return open(key, envelope);
    },
  });
}

export interface KeyRingHolder {
  current(): KeyRing;
  /** Re-reads the ring file and key files; a ring that fails to load is refused and the running one stays. */
  reload(): Promise<void>;
}

export async function createKeyRingHolder(keys: ProtectionConfig['keys'], env: NodeJS.ProcessEnv = process.env): Promise<KeyRingHolder> {
  let ring = await loadKeyRing(keys, env);
  return {
    current: () => ring,
    async reload() {
      ring = await loadKeyRing(keys, env);
    },
  };
}
