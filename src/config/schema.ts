import bytes from 'bytes';
import ms from 'ms';
import { z } from 'zod';

/**
 * The one schema of the sidecar's configuration. Every default lives here; the JSON Schema
 * in config/sidecar.schema.json is generated from it (npm run schema).
 */

const DURATION = /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/;
const duration = (description: string) =>
  z
    .union([z.number().int().nonnegative(), z.string().regex(DURATION, 'expected a duration such as 500ms, 30s, 5m or 1h')])
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

export const configSchema = z
  .strictObject({
    listen,
    upstream,
    limits,
    proxy,
    admin,
    shutdown,
    log,
  })
  .meta({ title: 'agent-sidecar configuration' });

/** The validated configuration, with every default applied. */
export type SidecarConfig = z.output<typeof configSchema>;
/** What a configuration file may contain. */
export type SidecarConfigInput = z.input<typeof configSchema>;
