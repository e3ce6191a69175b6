import { Command, Option } from 'commander';
import { issueToken, type IssuedClaims } from '../auth/index.ts';
import { collect, parseDurationFlag, usageError } from './usage.ts';

interface TokenFlags {
  sub?: string;
  role: string[];
  scope: string[];
  ttl: string;
  type: 'access' | 'refresh';
  secret?: string;
  iss?: string;
  aud?: string;
  tenant?: string;
}

/**
 * `agent-sidecar token`: mints an HS256 token signed with auth.jwt.secret, for tests,
 * scripts and service accounts. Prefer JWT_SECRET over --secret: arguments show up in
 * `ps` and shell history.
 */
export function registerTokenCommand(program: Command): void {
  program
    .command('token')
    .description('mint an HS256 token (sub, roles, scopes, iat, exp, jti, type) and print it')
    .option('--sub <subject>', 'the subject (sub)')
    .option('--role <role>', 'a role (repeatable)', collect, [])
    .option('--scope <scope>', 'a scope (repeatable)', collect, [])
    .option('--ttl <duration>', 'lifetime, e.g. 60m or 7d', '60m')
    .addOption(new Option('--type <type>', 'access, or refresh for the refresh endpoint').choices(['access', 'refresh']).default('access'))
    .addOption(new Option('--secret <secret>', 'the HS256 secret (auth.jwt.secret), at least 32 characters').env('JWT_SECRET'))
    .option('--iss <issuer>', 'issuer (iss), when auth.jwt.issuer is set')
    .option('--aud <audience>', 'audience (aud), when auth.jwt.audience is set')
    .option('--tenant <id>', 'tenant id (tenant_id)')
    .action(async (flags: TokenFlags) => {
      if (flags.sub === undefined || flags.sub === '') throw usageError('token needs --sub <subject>');
      if (flags.secret === undefined || flags.secret === '') throw usageError('token needs a secret: set JWT_SECRET or pass --secret');
      if (flags.secret.length < 32) throw usageError('the secret needs at least 32 characters (256 bits)');
      const ttlMs = parseDurationFlag('--ttl', flags.ttl);
      if (ttlMs <= 0) throw usageError('--ttl must be longer than zero');
      const claims: IssuedClaims = {
        sub: flags.sub,
        roles: flags.role,
        scopes: flags.scope,
        type: flags.type,
        ...(flags.iss === undefined ? {} : { iss: flags.iss }),
        ...(flags.aud === undefined ? {} : { aud: flags.aud }),
        ...(flags.tenant === undefined ? {} : { tenant_id: flags.tenant }),
      };
      process.stdout.write(`${await issueToken(flags.secret, claims, ttlMs)}\n`);
    });
}
