import { z } from 'zod';
import { egress } from './egress.ts';
import { mcp } from './mcp.ts';
import { parseAddress } from './address.ts';
import { address, clientPool, count, DAY_MS, duration, failMode, headerName, HOUR_MS, KIB, keyValues, MIB, peerList, size, TIB, timer } from './fields.ts';

export { address, DURATION_PATTERN } from './fields.ts';

/**
 * The one schema of the sidecar's configuration. Every default lives here; the JSON Schema
 * in config/sidecar.schema.json is generated from it (npm run schema).
 */

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
    ...clientPool('the upstream', { connections: 128, keepAlive: '4s', connect: '5s', headers: '60s', body: '5m' }),
    preserveHost: z.boolean().default(false).meta({ description: "Forward the client's Host header instead of the upstream's host." }),
    retry: z
      .strictObject({
        attempts: z
          .number()
          .int()
          .min(0)
          .max(5)
          .default(1)
          .meta({ description: 'Retries of an idempotent request without a body after a connection failure; 0 disables.' }),
      })
      .prefault({}),
    circuitBreaker: z
      .strictObject({
        enabled: z.boolean().default(true),
        failureThreshold: count('Consecutive upstream failures that open the circuit.', 10_000).default(5),
        openDuration: timer('How long the circuit stays open before one probe request is let through.').prefault('10s'),
        countStatus: z.array(z.number().int().min(500).max(599)).default([]).meta({
          description: 'Upstream response statuses that count as failures (connection failures and timeouts always do), for example [502, 503].',
        }),
      })
      .prefault({}),
    healthPath: z
      .string()
      .startsWith('/')
      .default('/')
      .meta({ description: 'Path that /readyz requests from the upstream; any HTTP answer counts as reachable.' }),
    queueTimeout: timer(
      'How long a request waits for one of upstream.connections when all are busy; past it, 503 SIDECAR_UPSTREAM_BUSY. 0: no waiting.',
    ).prefault('5s'),
    maxQueue: z.number().int().min(0).max(100_000).default(1024).meta({
      description: 'Requests waiting for an upstream connection at most; one more gets 503 SIDECAR_UPSTREAM_BUSY at once. 0: no waiting.',
    }),
    streamedBodyShare: z.number().gt(0).max(1).default(0.5).meta({
      description:
        'Share of upstream.connections that requests whose body streams (longer than limits.bufferBodyBytes) may hold at once (at least one), so that slow uploads never take every connection; the others wait as above.',
    }),
  })
  .prefault({});

const limits = z
  .strictObject({
    maxHeaderBytes: size('Largest request head (request line and headers) accepted; larger gets 431.', {
      min: KIB,
      max: MIB,
      why: 'common proxies allow 8 to 64 KiB, and Node.js holds the whole head in memory',
    }).prefault('16kb'),
    maxBodyBytes: size('Largest request body accepted; larger gets 413. 0 means no limit.', { max: TIB }).prefault('10mb'),
    clientIdleTimeout: timer('How long an idle keep-alive client connection is kept.').prefault('60s'),
    clientHeadersTimeout: timer('How long a client may take to send the request headers.').prefault('30s'),
    clientRequestTimeout: timer(
      'How long a client may take to send the whole request; 0 disables; not less than clientHeadersTimeout (Node.js refuses that).',
    ).prefault('5m'),
    clientBodyTimeout: timer(
      'How long a client may send no byte of its request body while the sidecar reads it; past it, 408 SIDECAR_REQUEST_TIMEOUT and the upstream request is cut. 0 disables.',
    ).prefault('30s'),
    bufferBodyBytes: size(
      'Request bodies up to this size are received whole before an upstream connection is taken, and sent with a Content-Length; longer ones stream once this much has arrived. 0: every body streams.',
      { max: 16 * MIB, why: 'each request being received holds this much in memory' },
    ).prefault('64kb'),
  })
  .prefault({})
  .superRefine((l, ctx) => {
    if (l.clientRequestTimeout > 0 && l.clientHeadersTimeout > 0 && l.clientHeadersTimeout > l.clientRequestTimeout) {
      ctx.addIssue({
        code: 'custom',
        path: ['clientRequestTimeout'],
        message: 'must not be less than clientHeadersTimeout (the headers are part of the request), unless 0 (disabled)',
      });
    }
  });

const proxy = z
  .strictObject({
    trustedProxies: peerList().default(['loopback']).meta({
      description:
        'Peers whose X-Forwarded-* headers are kept and extended: IP addresses, CIDR ranges, or the names loopback, linklocal, uniquelocal. From any other peer they are replaced.',
    }),
    requestIdHeader: headerName('Header carrying the request id; generated when absent.').default('x-request-id'),
    websockets: z.boolean().default(true).meta({ description: 'Proxy WebSocket upgrades.' }),
    headersWithUnderscores: z.enum(['drop', 'refuse', 'allow']).default('drop').meta({
      description:
        'Client headers whose names hold `_` or `.`, which CGI-style servers (CGI, WSGI, Rack, PHP) read as the same variable as the `-` spelling (x_auth_subject as X-Auth-Subject): drop them, refuse the request with 400 SIDECAR_HEADER_NAME_REFUSED, or allow them (never one spelling a header the sidecar removes or sets).',
    }),
  })
  .prefault({});

const admin = z
  .strictObject({
    address: address('Where the admin listener (/healthz, /readyz) binds. Loopback by default; set 0.0.0.0:9901 for Kubernetes probes.').default(
      '127.0.0.1:9901',
    ),
    enabled: z.boolean().default(true),
    token: z.string().min(32).optional().meta({
      description:
        'Bearer token for the admin API (revocation); usually ${env:SIDECAR_ADMIN_TOKEN}. A JWT or API key whose roles grant manage:users is accepted too.',
    }),
  })
  .prefault({});

const shutdown = z
  .strictObject({
    drainDelay: timer('After SIGTERM, keep accepting while readiness reports not ready, so that load balancers stop sending first.').prefault('0s'),
    gracePeriod: timer('How long in-flight requests and streams may finish after the listener closes.').prefault('30s'),
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
    secret: z
      .string()
      .min(32, 'an HS256 secret needs at least 32 characters (256 bits)')
      .optional()
      .meta({ description: 'Shared secret for HS256, usually ${env:JWT_SECRET}. Enables HS256.' }),
    keyFiles: z.array(z.string().min(1)).default([]).meta({ description: 'Public keys: PEM (SPKI or certificate) files, JWK or JWKS JSON files.' }),
    jwksUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .meta({ description: 'Remote JWKS, fetched at start, cached, refetched on an unknown kid.' }),
    jwksRefresh: timer('How often the JWKS is refetched in the background.').prefault('10m'),
    jwksCooldown: timer('An unknown kid triggers at most one refetch per this long.').prefault('30s'),
    jwksTimeout: timer('Timeout of one JWKS fetch.').prefault('5s'),
    issuer: stringOrList.optional().meta({ description: 'Accepted `iss` values.' }),
    audience: stringOrList.optional().meta({ description: 'Accepted `aud` values.' }),
    clockSkew: duration('Tolerance for exp and nbf.', {
      max: HOUR_MS,
      why: 'a larger skew is a broken clock, and makes short token lifetimes meaningless',
    }).prefault('30s'),
    requiredClaims: z.array(z.string()).default(['exp']).meta({ description: 'Claims a token must carry.' }),
    maxTokenBytes: size('Longer bearer tokens are refused before parsing.', { min: 1, max: 64 * KIB }).prefault('8kb'),
    header: headerName('Header carrying `Bearer <token>`.').default('authorization'),
    cookie: z.string().optional().meta({ description: 'Also take the token from this cookie.' }),
    claims: z
      .strictObject({
        roles: z.string().default('roles').meta({ description: 'Dot path of the roles claim (string or array), e.g. realm_access.roles.' }),
        scopes: z.string().default('scopes').meta({ description: 'Claim with a scopes array; a space-separated `scope` claim is read too.' }),
        tenant: z.string().default('tenant_id'),
        session: z.string().default('sid'),
      })
      .prefault({}),
    cacheSize: count('Verified tokens kept (keyed by hash, never past their exp); 0 disables. A memory bound.', 1_000_000, 0).default(10_000),
  })
  .superRefine((j, ctx) => {
    const hs = j.algorithms.filter((a) => a.startsWith('HS'));
    if (hs.length > 0 && j.secret === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['algorithms'],
        message: `lists ${hs.join(', ')} but auth.jwt.secret is not set; set the secret or remove the HS* algorithms`,
      });
    }
  })
  .meta({ description: 'JWT bearer tokens. Configure a secret, keyFiles or jwksUrl.' });

const apiKeys = z
  .strictObject({
    header: headerName('Header carrying the API key.').default('x-api-key'),
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
        subject: headerName("The caller's subject.").default('x-auth-subject'),
        roles: headerName("The caller's roles, comma-separated.").default('x-auth-roles'),
        scopes: headerName("The caller's scopes, space-separated.").default('x-auth-scopes'),
        keyId: headerName('The id of the API key used.').default('x-auth-key-id'),
        tenant: headerName("The caller's tenant.").default('x-auth-tenant'),
        forwardToken: z.boolean().default(false).meta({ description: 'Forward the original Authorization header to the agent.' }),
      })
      .prefault({})
      .meta({ description: 'Headers that tell the agent who called. The same headers from clients are always removed.' }),
    refresh: z
      .strictObject({
        enabled: z.boolean().default(false),
        path: z.string().startsWith('/').default('/auth/refresh'),
        accessTtl: duration('Lifetime of the access tokens it issues.', { min: 1000, max: 30 * DAY_MS }).prefault('60m'),
      })
      .prefault({})
      .meta({ description: 'Exchange a refresh token (HS256, auth.jwt.secret) for a new access token.' }),
  })
  .prefault({})
  .meta({ description: 'Who may call. With neither jwt nor apiKeys configured, auth is off and every request passes.' });

const policy = z
  .strictObject({
    file: z
      .string()
      .optional()
      .meta({ description: 'RBAC policy file (roles, routes). Default: the built-in reference policy. Reloaded on change and SIGHUP.' }),
    dryRun: z.boolean().default(false).meta({ description: 'Let would-be denials through, recording them as audit events.' }),
    rejectSemicolons: z.boolean().default(true).meta({ description: 'Refuse `;` in paths (matrix parameters confuse routing).' }),
    methodOverride: z.enum(['strip', 'authorize']).default('strip').meta({
      description: 'X-HTTP-Method-Override and kin: strip them, or forward them and authorize the method they name.',
    }),
  })
  .prefault({});

const redisUrl = (what: string) =>
  z
    .string()
    .regex(/^rediss?:\/\//, { error: 'expected redis://host:port or rediss://…', abort: true })
    .refine((v) => URL.canParse(v), 'not a valid URL: expected redis://[user:pass@]host:port[/db]')
    .meta({ description: what });

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, such as redis-sentinel-0.redis:26379')
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'the port is at most 65535');

const redisStore = z
  .strictObject({
    url: redisUrl('One Redis server: redis://[user:pass@]host:port[/db] (rediss:// for TLS). Give exactly one of url, sentinel and cluster.').optional(),
    sentinel: z
      .strictObject({
        masterName: z.string().min(1).meta({ description: 'The name the Sentinels monitor the primary under (sentinel monitor <name> …).' }),
        nodes: z
          .array(hostPort)
          .min(1)
          .meta({ description: 'Sentinels to ask where the primary is: host:port each (26379 by convention); more are learnt from them.' }),
        username: z.string().min(1).optional().meta({ description: 'ACL user of the Redis servers (the primary and replicas).' }),
        password: z.string().min(1).optional().meta({ description: 'Password of the Redis servers; use ${env:NAME}.' }),
        sentinelUsername: z.string().min(1).optional().meta({ description: 'ACL user of the Sentinels, when they ask for one.' }),
        sentinelPassword: z.string().min(1).optional().meta({ description: 'Password of the Sentinels, when they ask for one; use ${env:NAME}.' }),
        db: z.number().int().min(0).max(15).default(0).meta({ description: 'Database number.' }),
        tls: z.boolean().default(false).meta({ description: 'TLS to the Redis servers and the Sentinels.' }),
      })
      .optional()
      .meta({
        description:
          'Redis with Sentinel: the client asks the Sentinels for the primary, and after a failover reconnects to the new one. Give exactly one of url, sentinel and cluster.',
      }),
    cluster: z
      .strictObject({
        nodes: z
          .array(redisUrl('A node of the cluster (redis:// or rediss://, with user and password when it asks for them).'))
          .min(1)
          .meta({ description: 'Nodes to learn the cluster from: a few suffice, the rest are found through them.' }),
      })
      .optional()
      .meta({
        description:
          'Redis Cluster: keys spread over the nodes by slot; every script keeps its keys in one slot. Give exactly one of url, sentinel and cluster.',
      }),
    keyPrefix: z.string().default('agent-sidecar:'),
    connectTimeout: timer('Connecting to Redis.').prefault('2s'),
    commandTimeout: timer('One command; past it the store counts as unreachable.').prefault('500ms'),
  })
  .refine((r) => [r.url, r.sentinel, r.cluster].filter((v) => v !== undefined).length === 1, {
    error: 'give exactly one of url (one server), sentinel (a primary and its replicas behind Sentinels) and cluster (Redis Cluster)',
  });

const stores = z
  .strictObject({ redis: redisStore.optional().meta({ description: 'Without it, revocations, rate limits and Redis API keys live in memory.' }) })
  .prefault({});

const revocation = z
  .strictObject({
    failMode: failMode('closed', 'requests'),
    subjectTtl: duration(
      'How long a revocation by subject is kept: the longest access-token lifetime your issuers grant. Omit to keep it forever (the sidecar cannot know what an external issuer grants).',
      { max: 365 * DAY_MS },
    ).optional(),
  })
  .prefault({});

const rateRule = z.strictObject({
  requests: count('Requests allowed per window.', 1_000_000_000),
  per: duration('The window the requests are spread over.', { min: 1, max: 30 * DAY_MS }),
  burst: count('Requests allowed at once; default: requests.', 1_000_000_000).optional(),
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
    maxAge: duration('How long browsers may cache a preflight answer.', {
      max: DAY_MS,
      why: 'browsers cap it at 2 hours (Chromium) or a day (Firefox)',
    }).prefault('10m'),
  })
  .optional()
  .meta({ description: 'CORS: the sidecar answers preflights itself, without a token.' });

const audit = z.strictObject({ stdout: z.boolean().default(true).meta({ description: 'Audit events as JSON lines on stdout.' }) }).prefault({});

/** Items waiting for export, per signal: at 1 KiB an item, a queue this long is 1 GiB. */
const MAX_QUEUE = 1_000_000;

/** A batch is taken from the queue: it cannot be larger (both given here; from OTEL_* variables the batch is cut to the queue). */
function batchWithinQueue(b: { queueSize?: number | undefined; batchSize?: number | undefined }, ctx: z.RefinementCtx): void {
  if (b.queueSize !== undefined && b.batchSize !== undefined && b.batchSize > b.queueSize) {
    ctx.addIssue({ code: 'custom', path: ['batchSize'], message: 'must not be larger than queueSize: a batch is taken from the queue' });
  }
}

// gRPC metadata (grpc-js refuses anything else when the exporter is built): lower-case keys of
// letters, digits, _ . -, not ending in -bin (binary values), and printable ASCII values.
const GRPC_KEY = /^[0-9a-z_.-]+$/;
const otlpHeaders = z
  .record(
    z
      .string()
      .toLowerCase()
      .regex(GRPC_KEY, 'expected a metadata key of letters, digits, _ . -')
      .refine((k) => !k.endsWith('-bin'), 'keys ending in -bin carry binary values, which cannot be configured here'),
    z.string().regex(/^[\x20-\x7e]*$/, 'expected printable ASCII characters only'),
  )
  .default({})
  .meta({
    description:
      'Metadata sent with every export (an API key, a tenant), merged over OTEL_EXPORTER_OTLP_HEADERS. Keys: letters, digits, _ . -; values: printable ASCII.',
  });

const telemetry = z
  .strictObject({
    enabled: z
      .boolean()
      .optional()
      .meta({ description: 'Traces, metrics and logs over OTLP gRPC, /metrics and access records. Default: on; OTEL_SDK_DISABLED=true turns it off.' }),
    endpoint: z
      .url({ protocol: /^https?$/ })
      .optional()
      .meta({
        description: 'OTLP gRPC endpoint of the collector. Default: OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT, else http://127.0.0.1:4317. https:// uses TLS.',
      }),
    headers: otlpHeaders,
    serviceName: z.string().min(1).optional().meta({ description: 'service.name of the fronted agent. Default: OTEL_SERVICE_NAME, else agent.' }),
    serviceVersion: z.string().min(1).optional().meta({ description: "service.version: the fronted agent's version. Default: the sidecar's version." }),
    environment: z
      .string()
      .min(1)
      .optional()
      .meta({ description: 'deployment.environment.name (production, staging). Default: from OTEL_RESOURCE_ATTRIBUTES, else unknown.' }),
    agentType: z.string().min(1).optional().meta({ description: 'The agent_type label of the agent_* metrics and logs. Default: the service name.' }),
    resourceAttributes: keyValues('Further resource attributes, over OTEL_RESOURCE_ATTRIBUTES.'),
    exportTimeout: timer(
      'Timeout of one export to the collector, for every signal; 0: no limit; at most a day (metrics: at most the export interval). Default: OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT, lowered by OTEL_BSP_EXPORT_TIMEOUT, OTEL_BLRP_EXPORT_TIMEOUT or OTEL_METRIC_EXPORT_TIMEOUT, else 10s.',
    ).optional(),
    shutdownTimeout: timer('On shutdown, what is still queued is flushed for at most this long.').prefault('5s'),
    errorLogInterval: timer('Export errors are logged at most once per this long (and counted always).').prefault('60s'),
    encoder: z.enum(['sidecar', 'sdk']).default('sidecar').meta({
      description:
        "How spans and log records are encoded for OTLP: sidecar (the sidecar's own encoder, the default) or sdk (the OpenTelemetry SDK's protobuf serializers: slower, for troubleshooting an export a collector refuses or misreads).",
    }),
    traces: z
      .strictObject({
        enabled: z.boolean().optional().meta({ description: 'Record and export spans. Default: on; OTEL_TRACES_EXPORTER=none turns it off.' }),
        sampleRatio: z.number().min(0).max(1).optional().meta({
          description: "Share of new traces recorded (parent-based: a trusted caller's decision is kept). Default: OTEL_TRACES_SAMPLER(_ARG), else 1.",
        }),
        trustIncoming: peerList().optional().meta({
          description:
            'Peers whose traceparent, tracestate and baggage are continued: IPs, CIDRs, or loopback, linklocal, uniquelocal. Default: proxy.trustedProxies. From anyone else they are dropped and a new trace starts.',
        }),
        recordUser: z.boolean().default(false).meta({ description: "Put the caller's subject on server spans as enduser.id." }),
        queueSize: count(
          'Finished spans waiting for export at most; more are dropped and counted. Default: OTEL_BSP_MAX_QUEUE_SIZE, else 2048.',
          MAX_QUEUE,
        ).optional(),
        batchSize: count('Spans per export at most (at most queueSize). Default: OTEL_BSP_MAX_EXPORT_BATCH_SIZE, else 512.', MAX_QUEUE).optional(),
        scheduledDelay: timer('How long a span may wait for its batch. Default: OTEL_BSP_SCHEDULE_DELAY, else 5s.').optional(),
      })
      .prefault({})
      .superRefine(batchWithinQueue),
    metrics: z
      .strictObject({
        otlp: z
          .boolean()
          .optional()
          .meta({ description: 'Push metrics to the collector. Default: on; OTEL_METRICS_EXPORTER=none or prometheus turns it off.' }),
        prometheus: z.boolean().default(true).meta({ description: 'Serve /metrics (Prometheus text) on the admin listener.' }),
        exportInterval: timer('How often metrics are pushed to the collector. Default: OTEL_METRIC_EXPORT_INTERVAL, else 15s.', 1).optional(),
        sessionHeader: headerName(
          "Request header naming the caller's session for agent_active_sessions; the token's session claim counts when the header is absent.",
        ).default('x-session-id'),
        sessionWindow: duration('A session counts as active this long after its last request.', { min: 1, max: DAY_MS }).prefault('5m'),
        maxSessions: count('Distinct sessions tracked at most (memory bound).', 1_000_000).default(100_000),
      })
      .prefault({}),
    relay: z
      .strictObject({
        enabled: z.boolean().optional().meta({
          description:
            "Take the agent's own traces, metrics and logs over OTLP on loopback, protect them with the telemetry rule set, add the sidecar's resource attributes (k8s.*, host.*, cloud.*, deployment environment) the agent's lack, and forward them to the collector. Default: on when `run -- <command>` starts the agent (which is then pointed at it), else off.",
        }),
        grpc: z
          .union([address('Where the OTLP/gRPC receiver of the relay binds.'), z.literal(false)])
          .optional()
          .meta({
            description:
              'OTLP/gRPC receiver of the relay: host:port (loopback: the agent runs beside the sidecar), or false for none. Default: 127.0.0.1:4317; with `run --`, a free loopback port.',
          }),
        http: z
          .union([address('Where the OTLP/HTTP receiver of the relay binds.'), z.literal(false)])
          .optional()
          .meta({
            description:
              'OTLP/HTTP receiver of the relay (POST /v1/traces, /v1/metrics, /v1/logs; protobuf): host:port, or false for none. Default: 127.0.0.1:4318; with `run --`, a free loopback port.',
          }),
        autoInstrument: z.boolean().default(true).meta({
          description:
            "With `run --` and the relay on: a Node.js agent gets @opentelemetry/auto-instrumentations-node's register hook (NODE_OPTIONS) when that package resolves from the working directory, a Python agent is started under opentelemetry-instrument when it is on PATH. false: neither.",
        }),
        maxMessageBytes: size('Largest export request taken (after decompression); larger gets 413, or gRPC RESOURCE_EXHAUSTED.', {
          min: 1024,
          max: 64 * MIB,
          why: 'each request is held whole while it is rewritten',
        }).prefault('4mb'),
        queueBytes: size(
          "Rewritten requests waiting for the collector at most; past it the agent's data is dropped and counted (agent_telemetry_dropped_total, reason relay_queue_full), never held.",
          {
            min: 64 * KIB,
            max: TIB,
          },
        ).prefault('32mb'),
        thread: z.boolean().default(false).meta({
          description:
            "Rewrite, queue and export the agent's telemetry in a worker thread, off the thread that proxies: a second JavaScript heap (about 40 MB) and more CPU in all; on 2 CPUs it did not shorten the proxying's tail (bench/README.md, OTLP relay). For nodes with cores to spare: measure first.",
        }),
      })
      .prefault({})
      .meta({ description: "The OTLP relay: the agent's own telemetry through the sidecar, protected like the sidecar's." }),
    logs: z
      .strictObject({
        otlp: z
          .boolean()
          .optional()
          .meta({ description: 'Access records and audit events as OTLP log records. Default: on; OTEL_LOGS_EXPORTER=none turns it off.' }),
        stdout: z.boolean().optional().meta({
          description:
            'One access record per request as a JSON line on stdout (audit events: audit.stdout). Default: on only when access records are not exported as OTLP log records, so that each record has one sink; true with logs.otlp writes both.',
        }),
        queueSize: count(
          'Log records waiting for export at most; more are dropped and counted. Default: OTEL_BLRP_MAX_QUEUE_SIZE, else 2048.',
          MAX_QUEUE,
        ).optional(),
        batchSize: count('Log records per export at most (at most queueSize). Default: OTEL_BLRP_MAX_EXPORT_BATCH_SIZE, else 512.', MAX_QUEUE).optional(),
        scheduledDelay: timer('How long a log record may wait for its batch. Default: OTEL_BLRP_SCHEDULE_DELAY, else 1s.').optional(),
      })
      .prefault({})
      .superRefine(batchWithinQueue),
  })
  .prefault({})
  .meta({
    description:
      'OpenTelemetry: traces, metrics and logs over OTLP gRPC, and Prometheus /metrics on the admin listener. The standard OTEL_* variables apply (endpoint, headers, resource, sampler, exporters, batching, timeouts); these keys win.',
  });

const protectAction = z.enum(['redact', 'hash', 'encrypt', 'drop']);
const detectorAction = (def: 'redact' | 'off', what: string) =>
  z
    .enum(['redact', 'hash', 'encrypt', 'drop', 'off'])
    .default(def)
    .meta({ description: `${what}; off turns the detector off.` });
const RULE_SET_NAME = /^[A-Za-z][\w-]{0,63}$/;
/** Key ids go into envelopes (enc:v1:<kid>:…), so no colon. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9][\w.-]{0,63}$/;

/** Where a 32-byte key comes from: an environment variable, a file, or a passphrase through scrypt. */
export const keySourceShape = {
  env: z.string().min(1).optional().meta({ description: 'Environment variable holding 32 random bytes as base64, base64url or hex.' }),
  file: z.string().min(1).optional().meta({ description: 'File holding 32 random bytes as base64, base64url or hex (read again on SIGHUP).' }),
  passphraseEnv: z
    .string()
    .min(1)
    .optional()
    .meta({ description: 'Environment variable holding a passphrase; the key is derived with scrypt (N=2^15, r=8, p=1) and `salt`.' }),
  salt: z
    .string()
    .regex(/^[A-Za-z0-9_-]{22,}={0,2}$/, 'expected at least 16 random bytes as base64url (agent-sidecar keys generate --passphrase-env prints one)')
    .optional()
    .meta({
      description: 'Random salt of a passphrase key, base64url (agent-sidecar keys generate --passphrase-env NAME prints one).',
    }),
};
/** Exactly one source; a salt goes with a passphrase and only with it. */
export function checkKeySource(
  v: { env?: string | undefined; file?: string | undefined; passphraseEnv?: string | undefined; salt?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  const sources = [v.env, v.file, v.passphraseEnv].filter((x) => x !== undefined).length;
  if (sources !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of env, file or passphraseEnv' });
  if ((v.passphraseEnv !== undefined) !== (v.salt !== undefined))
    ctx.addIssue({ code: 'custom', path: ['salt'], message: 'a passphrase key needs a salt, and only a passphrase key has one' });
}
const keySource = z.strictObject(keySourceShape).superRefine(checkKeySource);
export const keyEntryShape = { id: z.string().regex(KEY_ID_PATTERN, 'expected a key id of letters, digits, _ . - (no colon)'), ...keySourceShape };

const fieldRule = z.strictObject({
  path: z
    .string()
    .regex(/^(\*\*|\*|[^.*]+)(\.(\*\*|\*|[^.*]+))*$/, 'expected a key name (password) or a dotted path (customer.card.number, *.ssn, **.token)')
    .meta({
      description:
        'A key name matches that key at any depth; a dotted path is anchored at the root, * is one level, ** any number. Keys compare case- and separator-insensitively (apiKey = api_key = API-KEY); arrays are transparent.',
    }),
  action: protectAction.default('redact'),
});

const customDetector = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,31}$/, 'expected a lower-case name such as order_ref')
      .meta({ description: 'The label in placeholders: [REDACTED:name].' }),
    pattern: z.string().min(1).meta({ description: 'A JavaScript regular expression (no (?i): use flags).' }),
    flags: z
      .string()
      .regex(/^[imsu]*$/, 'allowed flags: i, m, s, u')
      .default('')
      .meta({ description: 'Regular expression flags: i, m, s, u.' }),
    action: protectAction.default('redact'),
  })
  .superRefine((d, ctx) => {
    if (/^\(\?[a-z]+\)/.test(d.pattern)) {
      ctx.addIssue({ code: 'custom', path: ['pattern'], message: 'inline flags such as (?i) do not exist in JavaScript regular expressions; use flags: i' });
      return;
    }
    let re: RegExp;
    try {
      re = new RegExp(d.pattern, `${d.flags}g`);
    } catch (err) {
      // The engine's message quotes the pattern, which may come from the environment: only its reason.
      ctx.addIssue({
        code: 'custom',
        path: ['pattern'],
        message: `not a valid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: \/[\s\S]*\/[a-z]*: /, '')}`,
      });
      return;
    }
    if (re.test('')) ctx.addIssue({ code: 'custom', path: ['pattern'], message: 'the pattern matches the empty string' });
  });

export const DEFAULT_PROTECTED_FIELDS = [
  'password',
  'passwd',
  'secret',
  'client_secret',
  'api_key',
  'access_token',
  'refresh_token',
  'id_token',
  'private_key',
  'authorization',
  'aws_secret_access_key',
] as const;

const ruleSet = z.strictObject({
  detectors: z
    .strictObject({
      email: detectorAction('redact', 'E-mail addresses'),
      phone: detectorAction(
        'redact',
        'Phone numbers: international (+…) or national with separators, valid per libphonenumber; bare digit runs are ids, never phones',
      ),
      card: detectorAction('redact', 'Payment cards: 13-19 digits, Luhn-valid, of a known card network'),
      iban: detectorAction('redact', 'IBANs with a valid checksum and country format'),
      ssn: detectorAction('redact', 'US social security numbers written 123-45-6789 or 123 45 6789, invalid areas excluded'),
      ip: detectorAction('off', 'IPv4 and IPv6 addresses'),
      jwt: detectorAction('redact', 'JSON Web Tokens (eyJ….eyJ….…)'),
      bearer: detectorAction('redact', 'The credential after "Bearer "'),
      secrets: detectorAction('redact', 'Anthropic, OpenAI, AWS, GitHub, Slack and Google keys, PEM private key blocks'),
    })
    .prefault({}),
  phoneCountries: z
    .array(z.string().regex(/^[A-Z]{2}$/, 'expected an ISO 3166 country code such as US or GB'))
    .min(1)
    .default(['US'])
    .meta({ description: 'Countries whose national formats (without +) are recognized; international numbers are recognized whatever this says.' }),
  fields: z
    .array(fieldRule)
    .default(DEFAULT_PROTECTED_FIELDS.map((path) => ({ path, action: 'redact' as const })))
    .meta({ description: 'Field rules on JSON (bodies, log records, attributes); giving the list replaces the default one.' }),
  custom: z.array(customDetector).default([]).meta({ description: 'Your own detectors, checked at start.' }),
});
type RuleSetOutput = z.output<typeof ruleSet>;

const protectRoute = z.strictObject({
  path: z.string().startsWith('/').meta({ description: 'A route template as in the policy: /api/v1/agents/{agent_id}, a trailing /* for everything below.' }),
  methods: z.array(z.string().toUpperCase()).optional().meta({ description: 'Methods this applies to; default all.' }),
  rules: z.string().default('default').meta({ description: 'The rule set (protection.rules) applied.' }),
  request: z.boolean().default(true).meta({ description: 'Protect request bodies on their way to the agent.' }),
  response: z.boolean().default(true).meta({ description: 'Protect response bodies on their way to the client.' }),
  onError: z.enum(['refuse', 'pass']).default('refuse').meta({
    description:
      'A body to protect that cannot be parsed or is over maxBodyBytes: refuse (400/413 for requests, 502 for responses) or pass it on unprotected (logged).',
  }),
});

/** A rule set name that names none; the value itself is not repeated (it may come from the environment). */
const noRuleSet = (names: ReadonlySet<string>) => `names no rule set of protection.rules; the rule sets are ${[...new Set(['default', ...names])].join(', ')}`;

const protection = z
  .strictObject({
    rules: z
      .record(z.string().regex(RULE_SET_NAME, 'expected a rule set name of letters, digits, _ and -'), ruleSet)
      .default({})
      .transform((sets): Record<string, RuleSetOutput> => ('default' in sets ? sets : { ...sets, default: ruleSet.parse({}) }))
      .meta({ description: 'Named rule sets: detectors, field rules, custom detectors. `default` exists with the defaults unless you define it.' }),
    routes: z
      .array(protectRoute)
      .default([])
      .meta({ description: 'Where request and response bodies are protected (JSON, text, SSE event by event, NDJSON line by line); first match wins.' }),
    maxBodyBytes: size(
      'Largest JSON or text body (or single SSE event or NDJSON line) that is protected; larger is handled per onError. Such a body is held in memory whole.',
      {
        min: 1,
        max: 64 * MIB,
      },
    ).prefault('1mb'),
    telemetry: z
      .strictObject({
        enabled: z.boolean().default(true).meta({ description: 'Protect span, log and metric attributes before export, and JSON log lines on stdout.' }),
        rules: z.string().default('default'),
      })
      .prefault({}),
    keys: z
      .strictObject({
        active: z
          .string()
          .regex(KEY_ID_PATTERN)
          .optional()
          .meta({ description: "Id of the key that encrypts new values; default the first key of the ring. The ring file's own `active` wins." }),
        ring: z
          .array(z.strictObject(keyEntryShape).superRefine(checkKeySource))
          .default([])
          .meta({ description: 'Keys that decrypt (and the active one that encrypts): each from env, a file or a passphrase.' }),
        file: z.string().min(1).optional().meta({
          description:
            'A key ring file (agent-sidecar keys generate --ring FILE writes it), re-read when it changes and on SIGHUP: rotation without a restart.',
        }),
      })
      .prefault({})
      .meta({ description: 'AES-256-GCM keys for the encrypt action.' }),
    hashKey: keySource
      .optional()
      .meta({ description: 'HMAC-SHA-256 key for the hash action (32 random bytes); changing it breaks the correlation of old and new hashes.' }),
  })
  .prefault({})
  .superRefine((p, ctx) => {
    const names = new Set(Object.keys(p.rules));
    const known = (name: string, path: PropertyKey[]) => {
      if (name !== 'default' && !names.has(name)) ctx.addIssue({ code: 'custom', path, message: noRuleSet(names) });
    };
    p.routes.forEach((r, i) => known(r.rules, ['routes', i, 'rules']));
    known(p.telemetry.rules, ['telemetry', 'rules']);
    const actions = Object.values(p.rules).flatMap((r) => [...Object.values(r.detectors), ...r.fields.map((f) => f.action), ...r.custom.map((c) => c.action)]);
    if (actions.includes('encrypt') && p.keys.ring.length === 0 && p.keys.file === undefined) {
      ctx.addIssue({ code: 'custom', path: ['keys'], message: 'a rule encrypts, so keys.ring or keys.file must name at least one key' });
    }
    if (actions.includes('hash') && p.hashKey === undefined)
      ctx.addIssue({ code: 'custom', path: ['hashKey'], message: 'a rule hashes, so hashKey must name a key' });
    const ids = p.keys.ring.map((k) => k.id);
    if (new Set(ids).size !== ids.length) ctx.addIssue({ code: 'custom', path: ['keys', 'ring'], message: 'key ids must be unique' });
    if (p.keys.active !== undefined && p.keys.file === undefined && !ids.includes(p.keys.active)) {
      ctx.addIssue({ code: 'custom', path: ['keys', 'active'], message: 'names no key of keys.ring' });
    }
  })
  .meta({ description: 'Data protection: redaction, hashing and encryption of bodies (per route) and of all telemetry.' });

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
    protection,
    egress,
    mcp,
  })
  .superRefine((c, ctx) => {
    checkListeners(c, ctx);
    checkProtectedResource(c, ctx);
    const name = c.egress.protectPrompts;
    if (name !== undefined && name !== 'default' && !(name in c.protection.rules)) {
      ctx.addIssue({ code: 'custom', path: ['egress', 'protectPrompts'], message: noRuleSet(new Set(Object.keys(c.protection.rules))) });
    }
  })
  .meta({ title: 'agent-sidecar configuration' });

/** MCP as an OAuth protected resource verifies JWTs, and names the issuers that mint them. */
function checkProtectedResource(
  c: {
    auth: { jwt?: { issuer?: string[] | undefined } | undefined };
    mcp: { protectedResource?: { authorizationServers?: string[] | undefined } | undefined };
  },
  ctx: z.RefinementCtx,
): void {
  const resource = c.mcp.protectedResource;
  if (resource === undefined) return;
  if (c.auth.jwt === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['mcp', 'protectedResource'],
      message: 'needs auth.jwt: a protected resource accepts the access tokens of an authorization server',
    });
  } else if (resource.authorizationServers === undefined && c.auth.jwt.issuer === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['mcp', 'protectedResource', 'authorizationServers'],
      message: 'list the authorization servers (issuers) clients get tokens from, or set auth.jwt.issuer',
    });
  }
}

/**
 * Two listeners cannot bind the same port on the same host (or one of them on every host,
 * 0.0.0.0 or ::): run would fail to start. Port 0 takes a free port, so never conflicts.
 */
function checkListeners(
  c: { listen: { address: string }; admin: { address: string; enabled: boolean }; egress: { address: string; enabled: boolean } },
  ctx: z.RefinementCtx,
): void {
  const listeners: Array<[PropertyKey[], string]> = [[['listen', 'address'], c.listen.address]];
  if (c.admin.enabled) listeners.push([['admin', 'address'], c.admin.address]);
  if (c.egress.enabled) listeners.push([['egress', 'address'], c.egress.address]);
  const any = (host: string) => host === '0.0.0.0' || host === '::' || host === '';
  for (let i = 0; i < listeners.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = parseAddress(listeners[j]![1]);
      const b = parseAddress(listeners[i]![1]);
      if (a.port !== 0 && a.port === b.port && (a.host === b.host || any(a.host) || any(b.host))) {
        ctx.addIssue({
          code: 'custom',
          path: listeners[i]![0],
          message: `the same port as ${listeners[j]![0].join('.')} (${listeners[j]![1]}): each listener needs its own`,
        });
      }
    }
  }
}

/** The validated configuration, with every default applied. */
export type SidecarConfig = z.output<typeof configSchema>;
/** What a configuration file may contain. */
export type SidecarConfigInput = z.input<typeof configSchema>;
/** The mcp section, validated. */
export type McpConfig = SidecarConfig['mcp'];
/** The protection section, validated. */
export type ProtectionConfig = SidecarConfig['protection'];
/** One rule set of protection.rules, validated. */
export type RuleSetConfig = RuleSetOutput;
