import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { Option } from 'commander';
import { stringify } from 'yaml';
import { KEY_ID_PATTERN } from '../config/index.ts';
import { KEY_BYTES, readRingFile, writeRingFile, type RingFile } from '../protect/index.ts';
import { auditSensitiveOperation } from './operator-audit.ts';
import { usageError } from './usage.ts';

interface GenerateFlags {
  id?: string;
  ring?: string;
  activate?: boolean;
  passphraseEnv?: string;
  encoding: 'base64url' | 'base64' | 'hex';
}

/** k20250101-3fa2: sortable by creation, unique enough among the keys of one ring. */
function defaultKeyId(): string {
  return `k${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(2).toString('hex')}`;
}

/**
 * `keys generate`: a new 256-bit encryption or HMAC key, printed once (for an environment
 * variable or a secret file), or appended to a key ring file; with --passphrase-env, a random
 * scrypt salt for a passphrase key instead (the passphrase itself never passes through here).
 * `keys activate`: the key new values are encrypted with. Rotation in two steps, so that every
 * instance can decrypt a key's values before any instance writes them: generate into the ring,
 * roll the ring out (SIGHUP), then activate and roll out again.
 */
export function registerProtectionKeyCommands(keys: Command): void {
  keys
    .command('generate')
    .description('generate a data protection key (encrypt action, hashKey): print it, or add it to a key ring file')
    .option('--id <id>', 'key id, in envelopes (default: k<date>-<random>)')
    .option('--ring <file>', 'add the key to this key ring file (protection.keys.file), created mode 0600')
    .option('--activate', 'make it the key that encrypts new values (a new ring activates its first key anyway)')
    .option('--passphrase-env <name>', 'a passphrase key: print or add {id, passphraseEnv, salt} with a random salt')
    .addOption(new Option('--encoding <encoding>', 'how a printed key is written').choices(['base64url', 'base64', 'hex']).default('base64url'))
    .action((flags: GenerateFlags) => {
      const id = flags.id ?? defaultKeyId();
      if (!KEY_ID_PATTERN.test(id)) throw usageError(`--id ${id}: letters, digits, _ . - only (no colon), at most 64`);
      if (flags.activate && flags.ring === undefined) throw usageError('--activate needs --ring <file>');
      const entry =
        flags.passphraseEnv === undefined
          ? { id, key: randomBytes(KEY_BYTES).toString(flags.encoding), created: new Date().toISOString() }
          : { id, passphraseEnv: flags.passphraseEnv, salt: randomBytes(16).toString('base64url'), created: new Date().toISOString() };
      if (flags.ring === undefined) {
        if (flags.passphraseEnv === undefined) {
          process.stderr.write(
            `a new ${KEY_BYTES * 8}-bit key (${flags.encoding}); it is shown once: put it in a secret and name it in protection.keys.ring as { id: ${id}, env: … } or { id: ${id}, file: … }\n`,
          );
          process.stdout.write(`${entry.key}\n`);
        } else {
          process.stderr.write(`a passphrase key entry with a random salt: add it to protection.keys.ring and set ${flags.passphraseEnv}\n`);
          process.stdout.write(stringify([{ id, passphraseEnv: flags.passphraseEnv, salt: entry.salt }]));
        }
        return;
      }
      const ring: RingFile = readRingFile(flags.ring, { missingOk: true, key: '--ring' });
      if (ring.keys.some((k) => k.id === id)) throw usageError(`${flags.ring} already has a key with id ${id}`);
      ring.keys.unshift(entry);
      if (flags.activate || ring.active === undefined) ring.active = id;
      writeRingFile(flags.ring, ring);
      auditSensitiveOperation('generate_protection_key', {
        key_id: id,
        ring: flags.ring,
        active: ring.active === id,
        source: flags.passphraseEnv === undefined ? 'random' : 'passphrase',
      });
      process.stderr.write(
        `added key ${id} to ${flags.ring}${ring.active === id ? ' (active)' : `; active stays ${ring.active}: run keys activate --id ${id} once every instance has the ring`}\n`,
      );
      process.stdout.write(`${id}\n`);
    });

  keys
    .command('activate')
    .description('make a key of a key ring file the one that encrypts new values (then SIGHUP the sidecars)')
    .option('--ring <file>', 'the key ring file')
    .option('--id <id>', 'the key id')
    .action((flags: { ring?: string; id?: string }) => {
      if (flags.ring === undefined || flags.id === undefined) throw usageError('keys activate needs --ring <file> and --id <id>');
      const ring = readRingFile(flags.ring, { key: '--ring' });
      if (!ring.keys.some((k) => k.id === flags.id)) throw usageError(`${flags.ring} has no key with id ${flags.id}`);
      const previous = ring.active;
      ring.active = flags.id;
      writeRingFile(flags.ring, ring);
      auditSensitiveOperation('activate_protection_key', { key_id: flags.id, previous: previous ?? null, ring: flags.ring });
      process.stderr.write(`active key of ${flags.ring}: ${flags.id} (was ${previous ?? 'none'}); older keys still decrypt\n`);
    });
}
