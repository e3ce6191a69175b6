import { Option, type Command } from 'commander';
import { SidecarError, isSidecarError, type SidecarErrorCode } from '../errors/index.ts';
import { parseRevokeRequest, type RevokeRequest } from '../revocation/index.ts';
import { createRedisRevocationStore } from '../revocation/index.ts';
import { connectRedis, redisOfConfigFile, type RedisStoreConfig } from '../stores/index.ts';

interface RevokeFlags {
  jti?: string;
  exp?: string;
  sub?: string;
  before?: string;
  adminUrl: string;
  token?: string;
  redis?: string;
  config?: string;
  keyPrefix: string;
  clockSkew: string;
  subjectTtl?: string;
}

const EXIT_FAILED = 1;
const EXIT_BAD_INPUT = 2;
const TIMEOUT_MS = 5_000;

/**
 * `agent-sidecar revoke`: through the admin API of a running sidecar (any store), or with
 * --redis straight into Redis (no sidecar needed). Exit 0 revoked, 1 refused or
 * unreachable, 2 bad input.
 */
export function registerRevokeCommand(program: Command): Command {
  return program
    .command('revoke')
    .description('revoke one token (--jti with --exp) or every token of a subject issued up to --before')
    .option('--jti <id>', 'the jti claim of the token to revoke')
    .option('--exp <unix>', 'the exp claim of that token (unix seconds): the revocation is kept until then')
    .option('--sub <name>', 'revoke every token of this subject issued at or before --before')
    .option('--before <unix>', 'with --sub: unix seconds (default: now)')
    .addOption(new Option('--admin-url <url>', 'admin API of a running sidecar').env('SIDECAR_ADMIN_URL').default('http://127.0.0.1:9901'))
    .addOption(new Option('--token <token>', 'admin.token of that sidecar').env('SIDECAR_ADMIN_TOKEN'))
    .option('--redis <url>', 'write straight into this Redis instead of calling the admin API')
    .option('--config <sidecar.yaml>', "or straight into the Redis of a sidecar's configuration (stores.redis: one server, Sentinel or Cluster; its keyPrefix)")
    .option('--key-prefix <prefix>', 'with --redis: stores.redis.keyPrefix', 'agent-sidecar:')
    .option('--clock-skew <seconds>', 'with --redis: auth.jwt.clockSkew in seconds', '30')
    .option('--subject-ttl <seconds>', 'with --redis: keep a subject revocation this long (default: forever)')
    .action(async (flags: RevokeFlags) => {
      const { code, line } = await revoke(flags);
      (code === 0 ? process.stdout : process.stderr).write(`${line}\n`);
      process.exitCode = code;
    });
}

/** The command without the process around it: returns the exit status and the line to print. */
export async function revoke(flags: RevokeFlags): Promise<{ code: number; line: string }> {
  let request: RevokeRequest;
  let direct: { store: RedisStoreConfig; skew: number; ttl: number | undefined } | undefined;
  try {
    request = parseRevokeRequest(toBody(flags), Math.floor(Date.now() / 1000));
    if (flags.redis !== undefined && flags.config !== undefined)
      throw new SidecarError('SIDECAR_BAD_ADMIN_REQUEST', { message: 'Give --redis or --config, not both.' });
    // A configuration that does not load, or has no Redis, is bad input as a bad flag is.
    const store: RedisStoreConfig | undefined =
      flags.config !== undefined
        ? { ...redisOfConfigFile(flags.config), commandTimeout: TIMEOUT_MS }
        : flags.redis !== undefined
          ? { url: flags.redis, keyPrefix: flags.keyPrefix, connectTimeout: TIMEOUT_MS, commandTimeout: TIMEOUT_MS }
          : undefined;
    if (store !== undefined) direct = { store, skew: seconds(flags.clockSkew, 'clock-skew')!, ttl: seconds(flags.subjectTtl, 'subject-ttl') };
    if (direct === undefined && !flags.token)
      throw new SidecarError('SIDECAR_BAD_ADMIN_REQUEST', {
        message: 'Give --token (or set SIDECAR_ADMIN_TOKEN), or --redis or --config to write straight into Redis.',
      });
  } catch (err) {
    return failure(err, EXIT_BAD_INPUT);
  }
  try {
    if (direct !== undefined) await viaRedis(direct, request);
    else await viaAdmin(flags.adminUrl, flags.token!, request);
  } catch (err) {
    return failure(err, EXIT_FAILED);
  }
  return {
    code: 0,
    line:
      request.kind === 'token'
        ? `revoked token ${request.jti} until ${iso(request.exp)}`
        : `revoked tokens of ${request.sub} issued at or before ${iso(request.before)}`,
  };
}

function toBody(flags: RevokeFlags): Record<string, unknown> {
  const int = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v))
      throw new SidecarError('SIDECAR_BAD_ADMIN_REQUEST', { message: `--${name} must be unix time in seconds, such as ${Math.floor(Date.now() / 1000)}.` });
    return Number(v);
  };
  return { jti: flags.jti, exp: int(flags.exp, 'exp'), sub: flags.sub, before: int(flags.before, 'before') };
}

function seconds(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new SidecarError('SIDECAR_BAD_ADMIN_REQUEST', { message: `--${name} is a whole number of seconds.` });
  return Number(v);
}

async function viaRedis(o: { store: RedisStoreConfig; skew: number; ttl: number | undefined }, request: RevokeRequest): Promise<void> {
  const config = o.store;
  // The sidecar's key prefix rule (stores/redis.ts): the store's names are unprefixed, the client adds the prefix.
  const redis = await connectRedis(config);
  try {
    // Behind Sentinels, as the admin API does: answered once a replica has it.
    const store = createRedisRevocationStore(redis, {
      clockSkewSeconds: o.skew,
      subjectTtlSeconds: o.ttl,
      replicas: config.sentinel === undefined ? undefined : { count: 1, timeoutMs: Math.floor(config.commandTimeout / 2) },
    });
    const result = request.kind === 'token' ? await store.revokeToken(request.jti, request.exp) : await store.revokeSubject(request.sub, request.before);
    if (result.replicated === false) {
      process.stderr.write(
        'agent-sidecar revoke: stored on the Redis primary only: no replica confirmed it in time, and a failover now would lose it; revoke again after one\n',
      );
    }
  } finally {
    redis.disconnect();
  }
}

async function viaAdmin(adminUrl: string, token: string, request: RevokeRequest): Promise<void> {
  const body = request.kind === 'token' ? { jti: request.jti, exp: request.exp } : { sub: request.sub, before: request.before };
  let res: Response;
  try {
    res = await fetch(new URL('/revoke', adminUrl), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    throw new SidecarError('SIDECAR_ADMIN_UNREACHABLE', {
      message: `The admin API at ${adminUrl} is unreachable; is the sidecar running, and admin.address this one?`,
      cause: err,
    });
  }
  if (res.ok) return;
  const answer = (await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string } } | undefined;
  const remote = new Error(answer?.error?.message ?? `HTTP ${res.status}`);
  throw Object.assign(remote, { code: answer?.error?.code ?? `HTTP_${res.status}` });
}

function failure(err: unknown, exit: number): { code: number; line: string } {
  if (isSidecarError(err) || typeof (err as { code?: unknown }).code === 'string') {
    const e = err as Error & { code: SidecarErrorCode | string };
    return { code: exit, line: `agent-sidecar: ${e.message} [${e.code}]` };
  }
  return { code: exit, line: `agent-sidecar: ${(err as Error).message}` };
}

const iso = (unix: number) => new Date(unix * 1000).toISOString();
