import { unwatchFile, watchFile } from 'node:fs';
import type http from 'node:http';
import type { Meter, Tracer } from '@opentelemetry/api';
import type { StoreClient } from '../stores/index.ts';
import type { ReadinessCheck, Stage } from '../core/index.ts';
import { createLogAudit, type AuditSink } from '../audit/index.ts';
import { createAuthenticator, type Authenticator } from '../auth/index.ts';
import type { SidecarConfig } from '../config/index.ts';
import { createCors } from '../cors/index.ts';
import { createA2aStage } from '../a2a/index.ts';
import type { Logger } from '../log/index.ts';
import { createRpcTelemetry, type ToolCapture } from '../jsonrpc/index.ts';
import { createMcpStage, createProtectedResource } from '../mcp/index.ts';
import { createPolicyHolder } from '../policy/index.ts';
import { createMemoryRateLimitStore, createRateLimiter, createRedisRateLimitStore } from '../ratelimit/index.ts';
import { createMemoryRevocationStore, createRedisRevocationStore, createRevocationAdmin, createRevocationCheck } from '../revocation/index.ts';
import { createRedis, describeRedisStore, redisReadiness } from '../stores/index.ts';
import { createCookieStripper, createIdentityHeaders, strippedRequestHeaders } from './identity-headers.ts';
import { createRateLimitStage } from './rate-limit-stage.ts';
import { createRefreshStage } from './refresh.ts';
import { createRouteStage } from './route.ts';
import { createAccessStage } from './stage.ts';

export interface Access {
  /** CORS, refresh endpoint, the route, identify and authorize (auth on), rate limits, MCP messages (auth on): in that order. */
  stages: Stage[];
  /** Client headers never forwarded (identity headers, credentials). */
  stripHeaders: string[];
  readinessChecks: ReadinessCheck[];
  adminHandlers: Map<string, http.RequestListener>;
  /** Re-reads the policy and API key files (SIGHUP). */
  reload(): Promise<void>;
  close(): Promise<void>;
  /** For the startup line. */
  describe: { auth: string; stores: string };
  /** The Redis client of stores.redis, shared with the other stores (LLM budgets); undefined without Redis. */
  redis: StoreClient | undefined;
  /** The sidecar's caches by cache_type, for cache_hits / cache_misses. */
  caches: Record<string, () => { readonly hits: number; readonly misses: number } | undefined>;
}

// The reference design's admin permission for user and credential management.
const ADMIN_PERMISSION = 'manage:users';

export interface AccessHooks {
  /** The meter the features record with (revocation check results); undefined when telemetry is off. */
  meter?: Meter | undefined;
  /** The tracer of the MCP and A2A message spans; undefined when traces are off. */
  tracer?: Tracer | undefined;
  /** The agent_type label of the features' metrics. */
  agentType?: string;
  /** mcp.capture: tool arguments and results on MCP spans, already protected; undefined when off. */
  toolCapture?: ToolCapture | undefined;
  /** Build everything, contact nothing: Redis not connected, JWKS not fetched, no file watched (validate). */
  offline?: boolean;
}

/**
 * Builds identity and access from the configuration: the stores (Redis or memory), the
 * authenticator, the policy, revocation, rate limits and the admin revocation API.
 */
export async function createAccess(config: Readonly<SidecarConfig>, logger: Logger, auditSink?: AuditSink, hooks: AccessHooks = {}): Promise<Access> {
  const audit = auditSink ?? (config.audit.stdout ? createLogAudit(logger) : { emit() {} });
  const redisConfig = config.stores.redis;
  const offline = hooks.offline === true;
  const redis: StoreClient | undefined = redisConfig === undefined ? undefined : createRedis(redisConfig, logger, undefined, { lazy: offline });
  const closers: Array<() => Promise<void> | void> = [];
  const readinessChecks: ReadinessCheck[] = [];
  if (redis !== undefined) {
    readinessChecks.push(redisReadiness(redis));
    // A client that never connected (validate) has nothing to say goodbye to.
    closers.push(() => (redis.status === 'wait' ? redis.disconnect() : void redis.quit().catch(() => redis.disconnect())));
  }

  const auth: Authenticator = await createAuthenticator(config.auth, { logger, redis, offline });
  closers.unshift(() => auth.close());
  const keyFile = config.auth.apiKeys?.file;
  if (keyFile !== undefined && !offline) {
    const onKeyFileChange = () =>
      void auth
        .reload()
        .catch((err: unknown) => logger.error({ err, event_type: 'api_keys_reload', file: keyFile }, 'API key reload refused; the running keys stay'));
    watchFile(keyFile, { interval: 500, persistent: false }, onKeyFileChange);
    closers.push(() => unwatchFile(keyFile, onKeyFileChange));
  }
  readinessChecks.push({ name: 'auth', check: async () => auth.readiness() });

  const clockSkewSeconds = Math.ceil((config.auth.jwt?.clockSkew ?? 30_000) / 1000);
  const subjectTtlSeconds = config.revocation.subjectTtl === undefined ? undefined : Math.ceil(config.revocation.subjectTtl / 1000);
  const revocations = redis
    ? createRedisRevocationStore(redis, {
        clockSkewSeconds,
        subjectTtlSeconds,
        // Behind Sentinels there are replicas: a revocation is answered once one has it, or the wait
        // ran out (half the command timeout, so that WAIT answers before the client gives up on it).
        replicas: redisConfig?.sentinel === undefined ? undefined : { count: 1, timeoutMs: Math.max(1, Math.floor(redisConfig.commandTimeout / 2)) },
      })
    : createMemoryRevocationStore({ clockSkewSeconds, subjectTtlSeconds });
  const checkRevoked = createRevocationCheck(revocations, { failMode: config.revocation.failMode, logger, audit, meter: hooks.meter });

  const policies = createPolicyHolder({ file: config.policy.file, logger, watch: !offline });
  closers.push(() => policies.close());

  const credentialHeaders = [config.auth.jwt?.header, config.auth.apiKeys?.header].filter((h): h is string => h !== undefined);
  const identity = createIdentityHeaders(config.auth.identityHeaders);
  const stripHeaders = strippedRequestHeaders(config.auth.identityHeaders, auth.enabled ? credentialHeaders : []);
  const stages: Stage[] = [];
  const cors = createCors(config.cors);
  if (cors !== undefined) stages.push(cors);

  // The MCP routes' OAuth metadata is public: answered before any route or credential is looked at.
  const resource =
    auth.enabled && config.mcp.protectedResource !== undefined
      ? createProtectedResource({ config: config.mcp.protectedResource, issuers: config.auth.jwt?.issuer, policy: () => policies.current() })
      : undefined;
  if (resource !== undefined) stages.push(resource.stage);

  // Auth on or off, the route is resolved here, after CORS and refresh answered theirs.
  const route = createRouteStage({ policy: () => policies.current(), rejectSemicolons: config.policy.rejectSemicolons, enforce: auth.enabled });
  if (auth.enabled) {
    const jwt = config.auth.jwt;
    if (config.auth.refresh.enabled && jwt?.secret !== undefined) {
      stages.push(
        createRefreshStage({
          path: config.auth.refresh.path,
          secret: jwt.secret,
          accessTtlMs: config.auth.refresh.accessTtl,
          clockSkewMs: jwt.clockSkew,
          issuer: jwt.issuer,
          audience: jwt.audience,
          claims: jwt.claims,
          header: jwt.header,
          checkRevoked,
        }),
      );
    }
    stages.push(
      route,
      createAccessStage({
        authenticate: (ctx) => auth.authenticate(ctx.req),
        policy: () => policies.current(),
        checkRevoked,
        identity,
        stripTokenCookie: createCookieStripper(config.auth.jwt?.cookie, config.auth.identityHeaders.forwardToken),
        audit,
        logger,
        dryRun: config.policy.dryRun,
        methodOverride: config.policy.methodOverride,
        challenge: resource?.challenge,
        checkPrincipal: resource?.checkAudience,
      }),
    );
  } else stages.push(route);

  const limiterStore = redis ? createRedisRateLimitStore(redis) : createMemoryRateLimitStore();
  const rateLimit = createRateLimitStage(config.rateLimit, createRateLimiter({ store: limiterStore, failMode: config.rateLimit.failMode, logger }));
  if (rateLimit !== undefined) stages.push(rateLimit);
  // MCP and A2A messages are read only on their routes, once the route and the rate limits let them through.
  if (auth.enabled) {
    const rpcTelemetry = createRpcTelemetry({
      meter: hooks.meter,
      tracer: hooks.tracer,
      agentType: hooks.agentType ?? 'agent',
      maxAnswerBytes: config.mcp.maxMessageBytes,
      capture: hooks.toolCapture,
    });
    const rpc = {
      policy: () => policies.current(),
      audit,
      dryRun: config.policy.dryRun,
      maxMessageBytes: config.mcp.maxMessageBytes,
      maxDepth: config.mcp.maxDepth,
      telemetry: rpcTelemetry,
    };
    stages.push(createMcpStage(rpc), createA2aStage(rpc));
  }

  const adminHandlers = new Map<string, http.RequestListener>([
    [
      '/revoke',
      createRevocationAdmin({
        store: revocations,
        adminToken: config.admin.token,
        audit,
        logger,
        async authorize(req) {
          const principal = await auth.authenticate(req);
          if (principal === undefined) return undefined;
          await checkRevoked(principal);
          return policies.current().hasPermission(principal, ADMIN_PERMISSION) ? principal.subject : undefined;
        },
      }),
    ],
  ]);

  const modes = [config.auth.jwt ? 'jwt' : undefined, config.auth.apiKeys ? 'api_key' : undefined].filter(Boolean);
  return {
    stages,
    stripHeaders,
    readinessChecks,
    adminHandlers,
    redis,
    caches: { token: () => auth.tokenCacheStats() },
    async reload() {
      policies.reload();
      await auth.reload().catch((err: unknown) => logger.error({ err, event_type: 'api_keys_reload' }, 'API key reload refused; the running keys stay'));
    },
    async close() {
      for (const close of closers) await close();
    },
    describe: {
      auth: modes.length === 0 ? 'none' : `${modes.join('+')}${config.policy.dryRun ? ' (policy dry run)' : ''}`,
      stores: redisConfig === undefined ? 'memory' : `redis ${describeRedisStore(redisConfig)}`,
    },
  };
}
