import { stringify } from 'yaml';
import { z } from 'zod';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readTextCappedAsync } from '../files/index.ts';
import { parseYaml, YamlError } from '../files/index.ts';
import { writeFileAtomic } from '../files/index.ts';

/** One API key as stored: never the key itself, only its hash. */
export const apiKeyRecordSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9]{8,32}$/, 'expected 8 to 32 lowercase letters or digits'),
  hash: z.string().regex(/^[0-9a-f]{64}$/, 'expected the hex SHA-256 of the key (64 hex digits)'),
  subject: z.string().min(1),
  roles: z.array(z.string().min(1)).default([]),
  scopes: z.array(z.string().min(1)).optional(),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  enabled: z.boolean().default(true),
  createdAt: z.iso.datetime({ offset: true }),
});

export type ApiKeyRecord = z.output<typeof apiKeyRecordSchema>;

const fileSchema = z.strictObject({ keys: z.array(apiKeyRecordSchema).default([]) });

const invalid = (message: string, cause?: unknown) => new SidecarError('SIDECAR_API_KEYS_INVALID', { message, cause });

/**
 * Parses and validates an API key file (YAML or JSON, which is YAML too). Throws
 * SIDECAR_API_KEYS_INVALID naming the file, the entry (index and id) and the field.
 */
export function parseApiKeyFile(text: string, file: string, key?: string): ApiKeyRecord[] {
  const name = key === undefined ? file : `${file} (${key})`;
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: false }) ?? {};
  } catch (err) {
    if (!(err instanceof YamlError)) throw err;
    throw invalid(`${name} is not valid YAML or JSON: ${err.problems.join('; ')}`);
  }
  const result = fileSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const [top, index, ...rest] = issue.path;
      if (top !== 'keys' || typeof index !== 'number') return `${issue.path.join('.') || '(top level)'}: ${issue.message}`;
      const id = (raw as { keys: Array<{ id?: unknown }> }).keys[index]?.id;
      const field = rest.length > 0 ? `${rest.join('.')}: ` : '';
      return `keys[${index}]${typeof id === 'string' ? ` (id ${id})` : ''}: ${field}${issue.message}`;
    });
    throw invalid(`${name} is not a valid API key file:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
  const seen = new Set<string>();
  for (const [i, rec] of result.data.keys.entries()) {
    if (seen.has(rec.id)) throw invalid(`${name}: keys[${i}] repeats the id ${rec.id}`);
    seen.add(rec.id);
  }
  return result.data.keys;
}

/**
 * Reads and validates an API key file. A missing file is `[]` only when `missingOk`; `key`
 * names the setting that gave the path, for the message.
 */
export async function readApiKeyFile(file: string, options: { missingOk?: boolean; key?: string } = {}): Promise<ApiKeyRecord[]> {
  let text: string;
  try {
    text = await readTextCappedAsync(file, FILE_LIMITS.apiKeys);
  } catch (cause) {
    if (options.missingOk && (cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw invalid(`cannot read ${file}${options.key === undefined ? '' : ` (${options.key})`}: ${(cause as Error).message}`, cause);
  }
  return parseApiKeyFile(text, file, options.key);
}

/**
 * Rewrites the file with `records`, atomically (write beside, then rename) so that a
 * sidecar reloading it never reads half a file. Mode 0600 by default: hashes are not
 * secrets, but the file says who holds which roles.
 */
export async function writeApiKeyFile(file: string, records: readonly ApiKeyRecord[]): Promise<void> {
  const body = { keys: records.map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined))) };
  const text = file.endsWith('.json') ? `${JSON.stringify(body, null, 2)}\n` : stringify(body);
  await writeFileAtomic(file, text, 0o600);
}
