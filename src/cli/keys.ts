import { Command, Option } from 'commander';
import { apiKeyRecordSchema, apiKeyRedisKey, generateApiKey, readApiKeyFile, writeApiKeyFile, type ApiKeyRecord } from '../auth/index.ts';
import { connectRedis, redisOfConfigFile, scanKeys } from '../stores/index.ts';
import { auditSensitiveOperation } from './operator-audit.ts';
import { registerProtectionKeyCommands } from './protect-keys.ts';
import { collect, parseDurationFlag, usageError } from './usage.ts';

interface StoreFlags {
  file?: string;
  redis?: string;
  config?: string;
  prefix: string;
}

/** One place for the two stores: a key file (rewritten atomically) or Redis. */
interface KeyStore {
  list(): Promise<ApiKeyRecord[]>;
  put(record: ApiKeyRecord, isNew: boolean): Promise<void>;
  close(): Promise<void>;
}

async function openStore(flags: StoreFlags): Promise<KeyStore> {
  if ([flags.file, flags.redis, flags.config].filter((f) => f !== undefined).length !== 1)
    throw usageError(
      'give exactly one of --file <keys.yaml>, --redis <redis://host:port> or --config <sidecar.yaml> (its stores.redis: one server, Sentinel or Cluster)',
    );
  if (flags.file !== undefined) {
    const file = flags.file;
    return {
      // Listing or revoking in a file that is not there is a mistake (a wrong path); create makes it.
      list: () => readApiKeyFile(file, { key: '--file' }),
      async put(record, isNew) {
        const records = await readApiKeyFile(file, { missingOk: true });
        const i = records.findIndex((r) => r.id === record.id);
        if (isNew && i >= 0) throw usageError(`${file} already has a key with id ${record.id}`);
        if (i >= 0) records[i] = record;
        else records.push(record);
        await writeApiKeyFile(file, records);
      },
      close: async () => {},
    };
  }
  if (flags.redis !== undefined && !/^rediss?:\/\//.test(flags.redis)) throw usageError(`--redis ${flags.redis}: expected redis://host:port`);
  // The sidecar's key prefix rule (stores/redis.ts): names here are unprefixed, the client adds the prefix.
  const redis = await connectRedis(
    flags.config !== undefined
      ? { ...redisOfConfigFile(flags.config), commandTimeout: 5_000 }
      : { url: flags.redis!, keyPrefix: flags.prefix, connectTimeout: 2_000, commandTimeout: 5_000 },
  );
  return {
    async list() {
      const out: ApiKeyRecord[] = [];
      for await (const key of scanKeys(redis, apiKeyRedisKey('*'))) {
        const json = await redis.get(key);
        if (json !== null) out.push(apiKeyRecordSchema.parse(JSON.parse(json)));
      }
      return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    },
    async put(record, isNew) {
      const key = apiKeyRedisKey(record.id);
      const ok = isNew ? await redis.set(key, JSON.stringify(record), 'NX') : await redis.set(key, JSON.stringify(record));
      if (ok === null) throw usageError(`Redis already has a key with id ${record.id}`);
    },
    close: async () => void (await redis.quit()),
  };
}

async function withStore<T>(flags: StoreFlags, fn: (store: KeyStore) => Promise<T>): Promise<T> {
  const store = await openStore(flags);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function storeOptions(cmd: Command): Command {
  return cmd
    .option('--file <keys.yaml>', 'the API key file (auth.apiKeys.file)')
    .option('--redis <url>', 'or Redis (auth.apiKeys.redis), redis://host:port')
    .option('--config <sidecar.yaml>', "or the Redis of a sidecar's configuration (stores.redis, with its keyPrefix: one server, Sentinel or Cluster)")
    .addOption(new Option('--prefix <prefix>', 'Redis key prefix (stores.redis.keyPrefix)').default('agent-sidecar:'));
}

/**
 * `agent-sidecar keys create|list|revoke`: API keys are stored as hashes only; `create`
 * prints the new key once on stdout (everything else goes to stderr, so
 * `KEY=$(agent-sidecar keys create …)` captures exactly the key).
 */
export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('manage API keys (stored only as hashes) and data protection keys');

  storeOptions(keys.command('create').description('create a key; prints it once'))
    .option('--sub <subject>', 'who the key is issued to')
    .option('--role <role>', 'a role (repeatable)', collect, [])
    .option('--scope <scope>', 'a scope (repeatable)', collect, [])
    .option('--ttl <duration>', 'lifetime, e.g. 90d (default: no expiry)')
    .action(async (flags: StoreFlags & { sub?: string; role: string[]; scope: string[]; ttl?: string }) => {
      if (flags.sub === undefined || flags.sub === '') throw usageError('keys create needs --sub <subject>');
      const created = new Date();
      const ttl = flags.ttl === undefined ? undefined : parseDurationFlag('--ttl', flags.ttl);
      const fresh = generateApiKey();
      const record = apiKeyRecordSchema.parse({
        id: fresh.id,
        hash: fresh.hash,
        subject: flags.sub,
        roles: flags.role,
        ...(flags.scope.length > 0 ? { scopes: flags.scope } : {}),
        ...(ttl === undefined ? {} : { expiresAt: new Date(created.getTime() + ttl).toISOString() }),
        enabled: true,
        createdAt: created.toISOString(),
      });
      await withStore(flags, (store) => store.put(record, true));
      auditSensitiveOperation('create_api_key', { key_id: record.id, subject: record.subject, roles: record.roles, expires_at: record.expiresAt ?? null });
      process.stderr.write(`created API key ${record.id} for ${record.subject}; it is shown once, store it now\n`);
      process.stdout.write(`${fresh.key}\n`);
    });

  storeOptions(keys.command('list').description('list keys: id, subject, roles, expiry, enabled'))
    .option('--json', 'JSON lines instead of a table')
    .action(async (flags: StoreFlags & { json?: boolean }) => {
      const records = await withStore(flags, (store) => store.list());
      const rows = records.map((r) => ({
        id: r.id,
        subject: r.subject,
        roles: r.roles,
        scopes: r.scopes ?? [],
        expiresAt: r.expiresAt ?? null,
        enabled: r.enabled,
      }));
      if (flags.json) {
        for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`);
        return;
      }
      const lines = [
        ['ID', 'SUBJECT', 'ROLES', 'EXPIRES', 'ENABLED'],
        ...rows.map((r) => [r.id, r.subject, r.roles.join(','), r.expiresAt ?? 'never', String(r.enabled)]),
      ];
      const widths = lines[0]!.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
      for (const l of lines)
        process.stdout.write(
          `${l
            .map((cell, c) => cell.padEnd(widths[c]!))
            .join('  ')
            .trimEnd()}\n`,
        );
    });

  storeOptions(keys.command('revoke').description('disable a key (it stays listed)'))
    .option('--id <id>', 'the key id (the part after sk_sidecar_)')
    .action(async (flags: StoreFlags & { id?: string }) => {
      if (flags.id === undefined) throw usageError('keys revoke needs --id <id>');
      const id = flags.id;
      await withStore(flags, async (store) => {
        const record = (await store.list()).find((r) => r.id === id);
        if (!record) throw usageError(`no API key with id ${id}`);
        await store.put({ ...record, enabled: false }, false);
      });
      auditSensitiveOperation('revoke_api_key', { key_id: id });
      process.stderr.write(`revoked API key ${id}\n`);
    });

  registerProtectionKeyCommands(keys);
}
