import bytes from 'bytes';
import ms from 'ms';
import { z } from 'zod';

/**
 * The one schema of the sidecar's configuration. Every default lives here; the JSON Schema
 * in config/sidecar.schema.json is generated from it (npm run schema).
 */

export const DURATION_PATTERN = /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/;
const duration = (description: string) =>
  z
    .union([z.number().int().nonnegative(), z.string().regex(DURATION_PATTERN, 'expected a duration such as 500ms, 30s, 5m or 1h')])
    .transform((v) => (typeof v === 'number' ? v : ms(v as ms.StringValue)))
    .meta({ description: `${description} A duration such as 500ms, 30s or 5m, or a number of milliseconds.` });

const SIZE = /^\d+(\.\d+)?\s*(b|kb|mb|gb)$/i;
const size = (description: string) =>
  z
    .union([z.number().int().nonnegative(), z.string().regex(SIZE, 'expected a size such as 16kb or 10mb')])
    .transform((v) => (typeof v === 'number' ? v : (bytes.parse(v) ?? 0)))
    .meta({ description: `${description} A size such as 16kb or 10mb, or a number of bytes.` });

const ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
/** host:port, [v6]:port. Port 0 asks the kernel for a free port. */
export const address = (description: string) =>
  z
    .string()
    .regex(ADDRESS, { error: 'expected host:port, for example 0.0.0.0:8080 or [::1]:8080', abort: true })
    .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'the port must be at most 65535')
    .meta({ description });

const upstreamUrl = z
  .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL such as http://127.0.0.1:8000', abort: true })
  .refine((v) => {
    const u = new URL(v);
    return (u.pathname === '/' || u.pathname === '') && u.search === '' && u.hash === '';
  }, 'the upstream URL names an origin only (scheme, host, port), with no path or query')
  .meta({ description: 'The agent service the sidecar fronts.' });

const tls = z
  .strictObject({
    certFile: z.string().min(1).meta({ description: 'PEM certificate chain file.' }),
    keyFile: z.string().min(1).meta({ description: 'PEM private key file.' }),
    reload: z.boolean().default(true).meta({ description: 'Reload the certificate and key when the files change.' }),
  })
  .meta({ description: 'Terminate TLS on the ingress listener. Omit for plain HTTP.' });

const listen = z
  .strictObject({
    address: address('Where the ingress listener binds.').default('0.0.0.0:8080'),
    tls: tls.optional(),
  })
  .prefault({});

const upstream = z
  .strictObject({
    url: upstreamUrl.default('http://127.0.0.1:8000'),
    connections: z.number().int().min(1).max(4096).default(128).meta({ description: 'Keep-alive connections to the upstream at most.' }),
    preserveHost: z.boolean().default(false).meta({ description: "Forward the client's Host header instead of the upstream's host." }),
    keepAliveTimeout: duration('How long an idle upstream connection is kept.').prefault('4s'),
    timeouts: z
      .strictObject({
        connect: duration('Connecting to the upstream.').prefault('5s'),
        headers: duration('From the request being sent to the response headers arriving.').prefault('60s'),
        body: duration('The longest gap between two chunks of the response body; 0 disables it (long-lived streams).').prefault('5m'),
      })
      .prefault({}),
    retry: z
      .strictObject({
        attempts: z.number().int().min(0).max(5).default(1).meta({ description: 'Retries of an idempotent request without a body after a connection failure; 0 disables.' }),
      })
      .prefault({}),
    circuitBreaker: z
      .strictObject({
        enabled: z.boolean().default(true),
        failureThreshold: z.number().int().min(1).default(5).meta({ description: 'Consecutive upstream failures that open the circuit.' }),
        openDuration: duration('How long the circuit stays open before one probe request is let through.').prefault('10s'),
        countStatus: z.array(z.number().int().min(500).max(599)).default([]).meta({
          description: 'Upstream response statuses that count as failures (connection failures and timeouts always do), for example [502, 503].',
        }),
      })
      .prefault({}),
    healthPath: z.string().startsWith('/').default('/').meta({ description: 'Path that /readyz requests from the upstream; any HTTP answer counts as reachable.' }),
  })
  .prefault({});

const limits = z
  .strictObject({
    maxHeaderBytes: size('Largest request head (request line and headers) accepted; larger gets 431.').prefault('16kb'),
    maxBodyBytes: size('Largest request body accepted; larger gets 413. 0 means no limit.').prefault('10mb'),
    clientIdleTimeout: duration('How long an idle keep-alive client connection is kept.').prefault('60s'),
    clientHeadersTimeout: duration('How long a client may take to send the request headers.').prefault('30s'),
    clientRequestTimeout: duration('How long a client may take to send the whole request; 0 disables.').prefault('5m'),
  })
  .prefault({});

const proxy = z
  .strictObject({
    trustedProxies: z.array(z.string()).default(['loopback']).meta({
      description:
        'Peers whose X-Forwarded-* headers are kept and extended: IP addresses, CIDR ranges, or the names loopback, linklocal, uniquelocal. From any other peer they are replaced.',
    }),
    requestIdHeader: z.string().toLowerCase().default('x-request-id').meta({ description: 'Header carrying the request id; generated when absent.' }),
    websockets: z.boolean().default(true).meta({ description: 'Proxy WebSocket upgrades.' }),
  })
  .prefault({});

const admin = z
  .strictObject({
    address: address('Where the admin listener (/healthz, /readyz) binds. Loopback by default; set 0.0.0.0:9901 for Kubernetes probes.').default('127.0.0.1:9901'),
    enabled: z.boolean().default(true),
    token: z.string().min(32).optional().meta({
      description: 'Bearer token for the admin API (revocation); usually ${env:SIDECAR_ADMIN_TOKEN}. A JWT or API key whose roles grant manage:users is accepted too.',
    }),
  })
  .prefault({});

const shutdown = z
  .strictObject({
    drainDelay: duration('After SIGTERM, keep accepting while readiness reports not ready, so that load balancers stop sending first.').prefault('0s'),
    gracePeriod: duration('How long in-flight requests and streams may finish after the listener closes.').prefault('30s'),
  })
  .prefault({});

const log = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  })
  .prefault({});

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

const jwt = z
  .strictObject({
    algorithms: z
      .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512']))
      .default(['RS256', 'ES256', 'EdDSA'])
      .meta({ description: 'Accepted signature algorithms. HS* are accepted only with a secret; `none` never.' }),
    secret: z.string().min(32, 'an HS256 secret needs at least 32 characters (256 bits)').optional().meta({ description: 'Shared secret for HS256, usually ${env:JWT_SECRET}. Enables HS256.' }),
    keyFiles: z.array(z.string().min(1)).default([]).meta({ description: 'Public keys: PEM (SPKI or certificate) files, JWK or JWKS JSON files.' }),
    jwksUrl: z.url({ protocol: /^https?$/ }).optional().meta({ description: 'Remote JWKS, fetched at start, cached, refetched on an unknown kid.' }),
    jwksRefresh: duration('How often the JWKS is refetched in the background.').prefault('10m'),
    jwksCooldown: duration('An unknown kid triggers at most one refetch per this long.').prefault('30s'),
    jwksTimeout: duration('Timeout of one JWKS fetch.').prefault('5s'),
    issuer: stringOrList.optional().meta({ description: 'Accepted `iss` values.' }),
    audience: stringOrList.optional().meta({ description: 'Accepted `aud` values.' }),
    clockSkew: duration('Tolerance for exp and nbf.').prefault('30s'),
    requiredClaims: z.array(z.string()).default(['exp']).meta({ description: 'Claims a token must carry.' }),
    maxTokenBytes: size('Longer bearer tokens are refused before parsing.').prefault('8kb'),
    header: z.string().toLowerCase().default('authorization').meta({ description: 'Header carrying `Bearer <token>`.' }),
    cookie: z.string().optional().meta({ description: 'Also take the token from this cookie.' }),
    claims: z
      .strictObject({
        roles: z.string().default('roles').meta({ description: 'Dot path of the roles claim (string or array), e.g. realm_access.roles.' }),
        scopes: z.string().default('scopes').meta({ description: 'Claim with a scopes array; a space-separated `scope` claim is read too.' }),
        tenant: z.string().default('tenant_id'),
        session: z.string().default('sid'),
      })
      .prefault({}),
    cacheSize: z.number().int().min(0).default(10_000).meta({ description: 'Verified tokens kept (keyed by hash, never past their exp); 0 disables.' }),
  })
  .meta({ description: 'JWT bearer tokens. Configure a secret, keyFiles or jwksUrl.' });

const apiKeys = z
  .strictObject({
    header: z.string().toLowerCase().default('x-api-key'),
    file: z.string().optional().meta({ description: 'YAML/JSON file of hashed keys (agent-sidecar keys create writes it); reloaded on change.' }),
    redis: z.boolean().default(false).meta({ description: 'Also look keys up in Redis (stores.redis).' }),
  })
  .meta({ description: 'API keys, stored only as hashes.' });

const auth = z
  .strictObject({
    jwt: jwt.optional(),
    apiKeys: apiKeys.optional(),
    identityHeaders: z
      .strictObject({
        subject: z.string().toLowerCase().default('x-auth-subject'),
        roles: z.string().toLowerCase().default('x-auth-roles'),
        scopes: z.string().toLowerCase().default('x-auth-scopes'),
        keyId: z.string().toLowerCase().default('x-auth-key-id'),
        tenant: z.string().toLowerCase().default('x-auth-tenant'),
        forwardToken: z.boolean().default(false).meta({ description: 'Forward the original Authorization header to the agent.' }),
      })
      .prefault({})
      .meta({ description: 'Headers that tell the agent who called. The same headers from clients are always removed.' }),
    refresh: z
      .strictObject({
        enabled: z.boolean().default(false),
        path: z.string().startsWith('/').default('/auth/refresh'),
        accessTtl: duration('Lifetime of the access tokens it issues.').prefault('60m'),
      })
      .prefault({})
      .meta({ description: 'Exchange a refresh token (HS256, auth.jwt.secret) for a new access token.' }),
  })
  .prefault({})
  .meta({ description: 'Who may call. With neither jwt nor apiKeys configured, auth is off and every request passes.' });

const policy = z
  .strictObject({
    file: z.string().optional().meta({ description: 'RBAC policy file (roles, routes). Default: the built-in reference policy. Reloaded on change and SIGHUP.' }),
    dryRun: z.boolean().default(false).meta({ description: 'Let would-be denials through, recording them as audit events.' }),
    rejectSemicolons: z.boolean().default(true).meta({ description: 'Refuse `;` in paths (matrix parameters confuse routing).' }),
    methodOverride: z.enum(['strip', 'authorize']).default('strip').meta({
      description: 'X-HTTP-Method-Override and kin: strip them, or forward them and authorize the method they name.',
    }),
  })
  .prefault({});

const redisStore = z.strictObject({
  url: z.string().regex(/^rediss?:\/\//, 'expected redis://host:port or rediss://…').meta({ description: 'redis://[user:pass@]host:port[/db]' }),
  keyPrefix: z.string().default('agent-sidecar:'),
  connectTimeout: duration('Connecting to Redis.').prefault('2s'),
  commandTimeout: duration('One command; past it the store counts as unreachable.').prefault('500ms'),
});

const stores = z
  .strictObject({ redis: redisStore.optional().meta({ description: 'Without it, revocations, rate limits and Redis API keys live in memory.' }) })
  .prefault({});

const failMode = (def: 'open' | 'closed', what: string) =>
  z.enum(['open', 'closed']).default(def).meta({ description: `When Redis is unreachable: closed refuses (503), open lets ${what} pass.` });

const revocation = z
  .strictObject({
    failMode: failMode('closed', 'requests'),
    subjectTtl: duration(
      'How long a revocation by subject is kept: the longest access-token lifetime your issuers grant. Omit to keep it forever (the sidecar cannot know what an external issuer grants).',
    ).optional(),
  })
  .prefault({});

const rateRule = z.strictObject({
  requests: z.number().int().min(1),
  per: duration('The window the requests are spread over.'),
  burst: z.number().int().min(1).optional().meta({ description: 'Requests allowed at once; default: requests.' }),
});

const rateLimit = z
  .strictObject({
    perPrincipal: rateRule.optional().meta({ description: 'Each subject (or client address when anonymous).' }),
    routes: z
      .array(rateRule.extend({ path: z.string().startsWith('/'), methods: z.array(z.string().toUpperCase()).optional() }))
      .default([])
      .meta({ description: 'Per principal and route template, on top of perPrincipal.' }),
    failMode: failMode('open', 'requests'),
  })
  .prefault({});

const cors = z
  .strictObject({
    allowedOrigins: z.array(z.string()).default([]).meta({ description: 'Exact origins, or * for any (never with credentials).' }),
    allowedMethods: z.array(z.string().toUpperCase()).default(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']),
    allowedHeaders: z.array(z.string().toLowerCase()).default(['authorization', 'content-type', 'x-api-key', 'x-request-id']),
    exposedHeaders: z.array(z.string().toLowerCase()).default(['x-request-id', 'retry-after', 'ratelimit', 'ratelimit-policy']),
    allowCredentials: z.boolean().default(false),
    maxAge: duration('How long browsers may cache a preflight answer.').prefault('10m'),
  })
  .optional()
  .meta({ description: 'CORS: the sidecar answers preflights itself, without a token.' });

const audit = z
  .strictObject({ stdout: z.boolean().default(true).meta({ description: 'Audit events as JSON lines on stdout.' }) })
  .prefault({});

const keyValues = (description: string) => z.record(z.string().min(1), z.string()).default({}).meta({ description });

const telemetry = z
  .strictObject({
    enabled: z.boolean().optional().meta({ description: 'Traces, metrics and logs over OTLP gRPC, /metrics and access records. Default: on; OTEL_SDK_DISABLED=true turns it off.' }),
    endpoint: z.url({ protocol: /^https?$/ }).optional().meta({
      description: 'OTLP gRPC endpoint of the collector. Default: OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT, else http://127.0.0.1:4317. https:// uses TLS.',
    }),
    headers: keyValues('Metadata sent with every export (an API key, a tenant), merged over OTEL_EXPORTER_OTLP_HEADERS.'),
    serviceName: z.string().min(1).optional().meta({ description: 'service.name of the fronted agent. Default: OTEL_SERVICE_NAME, else agent.' }),
    serviceVersion: z.string().min(1).optional().meta({ description: "service.version: the fronted agent's version. Default: the sidecar's version." }),
    environment: z.string().min(1).optional().meta({ description: 'deployment.environment.name (production, staging). Default: from OTEL_RESOURCE_ATTRIBUTES, else unknown.' }),
    agentType: z.string().min(1).optional().meta({ description: 'The agent_type label of the agent_* metrics and logs. Default: the service name.' }),
    resourceAttributes: keyValues('Further resource attributes, over OTEL_RESOURCE_ATTRIBUTES.'),
    exportTimeout: duration('Timeout of one export to the collector.').prefault('10s'),
    shutdownTimeout: duration('On shutdown, what is still queued is flushed for at most this long.').prefault('5s'),
    errorLogInterval: duration('Export errors are logged at most once per this long (and counted always).').prefault('60s'),
    traces: z
      .strictObject({
        enabled: z.boolean().default(true),
        sampleRatio: z.number().min(0).max(1).optional().meta({
          description: 'Share of new traces recorded (parent-based: a trusted caller\'s decision is kept). Default: OTEL_TRACES_SAMPLER(_ARG), else 1.',
        }),
        trustIncoming: z.array(z.string()).optional().meta({
          description:
            'Peers whose traceparent, tracestate and baggage are continued: IPs, CIDRs, or loopback, linklocal, uniquelocal. Default: proxy.trustedProxies. From anyone else they are dropped and a new trace starts.',
        }),
        recordUser: z.boolean().default(false).meta({ description: 'Put the caller\'s subject on server spans as enduser.id.' }),
        queueSize: z.number().int().min(1).default(2048).meta({ description: 'Finished spans waiting for export at most; more are dropped and counted.' }),
        batchSize: z.number().int().min(1).default(512).meta({ description: 'Spans per export at most.' }),
        scheduledDelay: duration('How long a span may wait for its batch.').prefault('5s'),
      })
      .prefault({}),
    metrics: z
      .strictObject({
        otlp: z.boolean().default(true).meta({ description: 'Push metrics to the collector.' }),
        prometheus: z.boolean().default(true).meta({ description: 'Serve /metrics (Prometheus text) on the admin listener.' }),
        exportInterval: duration('How often metrics are pushed to the collector.').prefault('15s'),
        sessionHeader: z.string().toLowerCase().default('x-session-id').meta({
          description: "Request header naming the caller's session for agent_active_sessions; the token's session claim counts when the header is absent.",
        }),
        sessionWindow: duration('A session counts as active this long after its last request.').prefault('5m'),
        maxSessions: z.number().int().min(1).default(100_000).meta({ description: 'Distinct sessions tracked at most (memory bound).' }),
      })
      .prefault({}),
    logs: z
      .strictObject({
        otlp: z.boolean().default(true).meta({ description: 'Access records and audit events as OTLP log records.' }),
        stdout: z.boolean().default(true).meta({ description: 'One access record per request as a JSON line on stdout (audit events: audit.stdout).' }),
        queueSize: z.number().int().min(1).default(2048).meta({ description: 'Log records waiting for export at most; more are dropped and counted.' }),
        batchSize: z.number().int().min(1).default(512).meta({ description: 'Log records per export at most.' }),
        scheduledDelay: duration('How long a log record may wait for its batch.').prefault('1s'),
      })
      .prefault({}),
  })
  .prefault({})
  .meta({ description: 'OpenTelemetry: traces, metrics and logs over OTLP gRPC, and Prometheus /metrics on the admin listener. Standard OTEL_* variables apply; these keys win.' });

export const configSchema = z
  .strictObject({
    listen,
    upstream,
    limits,
    proxy,
    admin,
    shutdown,
    log,
    auth,
    policy,
    stores,
    revocation,
    rateLimit,
    cors,
    audit,
    telemetry,
  })
  .meta({ title: 'agent-sidecar configuration' });

/** The validated configuration, with every default applied. */
export type SidecarConfig = z.output<typeof configSchema>;
/** What a configuration file may contain. */
export type SidecarConfigInput = z.input<typeof configSchema>;
