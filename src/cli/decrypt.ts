import { Command, Option } from 'commander';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { compileFieldRules, createProtection, ENVELOPE_PATTERN, ENVELOPE_PREFIX, normalizeKey, type FieldMatcher } from '../protect/index.ts';
import { filterLines, inputError } from './lines.ts';
import { auditSensitiveOperation } from './operator-audit.ts';
import { collect, usageError } from './usage.ts';

interface DecryptFlags {
  config?: string;
  field: string[];
  all?: boolean;
}

type Report = (problem: string, code: string) => void;

/**
 * `agent-sidecar decrypt`: JSON lines in, the listed fields decrypted (or, with --all, every
 * envelope, also inside text), for holders of the keys. A value that does not decrypt (altered,
 * unknown key) is reported with its line and path and left encrypted; a line that is not JSON
 * is reported and left out. Each run is an audit event on stderr.
 */
export function registerDecryptCommand(program: Command, load: (flags: { config?: string }) => Readonly<SidecarConfig>): void {
  program
    .command('decrypt')
    .description('decrypt the listed fields of JSON lines from stdin (protection.keys), to stdout')
    .addOption(new Option('-c, --config <file>', 'YAML configuration file (protection.keys)').env('SIDECAR_CONFIG'))
    .option('--field <path>', 'a field to decrypt, as in field rules: ssn, customer.card.number, *.email (repeatable)', collect, [])
    .option('--all', 'decrypt every envelope found, in any field and inside text')
    .action(async (flags: DecryptFlags) => {
      if (flags.field.length === 0 && !flags.all) throw usageError('decrypt needs --field <path> (repeatable) or --all');
      const protection = await createProtection(load(flags), createLogger('warn', process.stderr));
      const ring = protection.keys();
      if (ring === undefined) throw usageError('no decryption keys: configure protection.keys (ring or file)');
      const fields = flags.all ? undefined : compileFieldRules(flags.field.map((path) => ({ path, action: 'encrypt' as const })));
      let decrypted = 0;
      const open = (envelope: string, where: string, report: Report): unknown => {
        try {
          const { type, plaintext } = ring.decrypt(envelope);
          decrypted++;
          return type === 'j' ? (JSON.parse(plaintext) as unknown) : plaintext;
        } catch (err) {
          if (!(err instanceof SidecarError)) throw err;
          report(`${where}: ${err.message}; left encrypted`, err.code);
          return envelope;
        }
      };
      try {
        await filterLines((line, _n, report) => {
          let doc: unknown;
          try {
            doc = JSON.parse(line);
          } catch {
            throw inputError('not valid JSON');
          }
          const out =
            fields === undefined ? openAll(doc, '', (e, w) => open(e, w, report)) : openFields(doc, fields, fields.root, '', (e, w) => open(e, w, report));
          return JSON.stringify(out);
        });
      } finally {
        auditSensitiveOperation('decrypt', { values: decrypted, fields: flags.all ? '*' : flags.field, keys: ring.ids });
      }
    });
}

type Open = (envelope: string, where: string) => unknown;

function openFields(v: unknown, fields: FieldMatcher, state: readonly number[], path: string, open: Open): unknown {
  if (Array.isArray(v)) return v.map((item, i) => openFields(item, fields, state, `${path}[${i}]`, open));
  if (typeof v !== 'object' || v === null) return v;
  // fromEntries defines own properties, so a "__proto__" key stays a key.
  return Object.fromEntries(
    Object.entries(v).map(([key, child]) => {
      const { rule, next } = fields.step(state, normalizeKey(key));
      const where = path === '' ? key : `${path}.${key}`;
      return [key, rule !== undefined ? openValue(child, where, open) : openFields(child, fields, next, where, open)];
    }),
  );
}

function openValue(v: unknown, where: string, open: Open): unknown {
  if (typeof v === 'string' && v.startsWith(ENVELOPE_PREFIX)) return open(v, where);
  if (Array.isArray(v)) return v.map((item, i) => openValue(item, `${where}[${i}]`, open));
  return v;
}

function openAll(v: unknown, path: string, open: Open): unknown {
  if (typeof v === 'string') {
    if (/^enc:v1:[^:\s]+:[A-Za-z0-9_-]+$/.test(v)) return open(v, path || '(value)');
    if (!v.includes(ENVELOPE_PREFIX)) return v;
    return v.replace(ENVELOPE_PATTERN, (e) => {
      const plain = open(e, path || '(value)');
      return typeof plain === 'string' ? plain : JSON.stringify(plain);
    });
  }
  if (Array.isArray(v)) return v.map((item, i) => openAll(item, `${path}[${i}]`, open));
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.entries(v).map(([key, child]) => [key, openAll(child, path === '' ? key : `${path}.${key}`, open)]));
}
