import { once } from 'node:events';
import type http from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAccess, type Access } from './access/index.ts';
import {
  combineObservers,
  keepResponseBody,
  type ReadinessCheck,
  type RequestContext,
  type RequestObserver,
  type SideListener,
  type Stage,
} from './core/index.ts';
import { createAdminServer } from './admin/index.ts';
import { createLogAudit, instrumentAudit } from './audit/index.ts';
import { upstreamReadiness } from './admin/index.ts';
import { formatAddress, parseAddress, type SidecarConfig } from './config/index.ts';
import { SidecarError } from './errors/index.ts';
import { createToolCapture, type ToolCapture } from './jsonrpc/index.ts';
import { createIngress } from './ingress/index.ts';
import type { Logger } from './log/index.ts';
import { createProtection, type Protection } from './protect/index.ts';
import { createCircuitBreaker } from './proxy/index.ts';
import { createForwarder } from './proxy/index.ts';
import { createForwardedResolver } from './ingress/index.ts';
import { createRequestHeaderBuilder } from './proxy/index.ts';
import { createUpgrader } from './proxy/index.ts';
import { createEgress, type Egress } from './egress/index.ts';
import { relayWorkerSource } from './relay-thread.ts';
import { createTelemetry, observeCaches, type Telemetry } from './telemetry/index.ts';
import { version } from './version.ts';

export interface SidecarOptions {
  config: Readonly<SidecarConfig>;
  logger: Logger;
  /** Identify, authorize, limit, protect: run in order before the proxy hop. */
  stages?: readonly Stage[];
  /** Readiness checks besides the upstream's (stores, for example). */
  readinessChecks?: readonly ReadinessCheck[];
  /** Called last during shutdown (telemetry flush, store disconnects). */
  onShutdown?: Array<() => Promise<void>>;
  /** Further admin endpoints by exact path (POST /revoke). */
  adminHandlers?: ReadonlyMap<string, http.RequestListener>;
  /** Client headers never forwarded, fixed by configuration (identity headers, credentials). */
  stripHeaders?: readonly string[];
  /** What the startup line says about auth, stores and telemetry. */
  describe?: { auth: string; stores: string; telemetry?: string; protection?: string };
  /** Watch each request (telemetry). */
  observers?: readonly RequestObserver[];
  /** Listeners besides ingress and admin (LLM egress). */
  listeners?: readonly SideListener[];
}

export type { SideListener } from './core/index.ts';

export interface Sidecar {
  start(): Promise<{ ingress: AddressInfo; admin: AddressInfo | undefined; listeners: Record<string, AddressInfo> }>;
  /** Drain and stop; safe to call more than once. */
  shutdown(options?: { drainDelay?: number }): Promise<void>;
  /** Releases what a sidecar that was never started holds (pools, file watches, stores), quietly; validate calls it. */
  dispose(): Promise<void>;
  readonly draining: boolean;
}

/**
 * Builds the whole process: ingress listener, proxy hop, admin listener and shutdown.
 *
 * @example
 * const sidecar = createSidecar({ config: loadConfig({ file }), logger: createLogger('info') });
 * await sidecar.start();
 * process.once('SIGTERM', () => void sidecar.shutdown());
 */
export function createSidecar(options: SidecarOptions): Sidecar {
  const { config, logger } = options;
  const breakerConfig = config.upstream.circuitBreaker;
  const breaker = breakerConfig.enabled
    ? createCircuitBreaker({
        failureThreshold: breakerConfig.failureThreshold,
        openDuration: breakerConfig.openDuration,
        onStateChange: (state) => logger.warn({ event_type: 'circuit_breaker', state, upstream: config.upstream.url }, `upstream circuit ${state}`),
      })
    : undefined;
  const buildHeaders = createRequestHeaderBuilder({
    requestIdHeader: config.proxy.requestIdHeader,
    upstreamHost: config.upstream.preserveHost ? undefined : new URL(config.upstream.url).host,
    alwaysStrip: options.stripHeaders,
    headersWithUnderscores: config.proxy.headersWithUnderscores,
    onFoldingHeaderDropped: logger.isLevelEnabled('debug')
      ? (ctx, name) =>
          logger.debug({ event_type: 'header_dropped', request_id: ctx.requestId, header: name }, 'client header with `_` or `.` in its name not forwarded')
      : undefined,
  });
  const onUpstreamError = (ctx: RequestContext, err: SidecarError) =>
    logger.warn(
      { request_id: ctx.requestId, method: ctx.req.method, path: ctx.target, error_type: err.code, error: errorMessage(err) },
      'upstream request failed',
    );
  let draining = false;
  const observer = combineObservers(options.observers ?? [], (err) => logger.error({ err }, 'a request observer failed'));
  const forwarder = createForwarder({
    observer,
    upstream: config.upstream,
    maxBodyBytes: config.limits.maxBodyBytes,
    bufferBodyBytes: config.limits.bufferBodyBytes,
    requestIdHeader: config.proxy.requestIdHeader,
    buildHeaders,
    breaker,
    isDraining: () => draining,
    ownsCors: config.cors !== undefined,
    onUpstreamError,
  });
  const upgrader = createUpgrader({
    upstreamUrl: config.upstream.url,
    connectTimeout: config.upstream.timeouts.connect,
    requestIdHeader: config.proxy.requestIdHeader,
    buildHeaders,
    onUpstreamError,
    observer,
  });
  const ingress = createIngress({
    config,
    stages: options.stages ?? [],
    forwarder,
    upgrader,
    resolveForwarded: createForwardedResolver({ trustedProxies: config.proxy.trustedProxies, tls: config.listen.tls !== undefined }),
    logger,
    observer,
  });
  const admin = config.admin.enabled
    ? createAdminServer({
        isDraining: () => draining,
        checks: [
          upstreamReadiness(forwarder.pool, config.upstream.healthPath, Math.min(2000, config.upstream.timeouts.headers)),
          ...(options.readinessChecks ?? []),
        ],
        handlers: options.adminHandlers,
        timeouts: config.limits,
      })
    : undefined;

  let stopping: Promise<void> | undefined;
  const sideListeners = options.listeners ?? [];

  async function stop(drainDelay: number): Promise<void> {
    draining = true;
    ingress.startDraining();
    logger.info({ event_type: 'shutdown', in_flight: ingress.inFlight, drain_delay_ms: drainDelay }, 'shutting down: readiness now fails');
    if (drainDelay > 0) await sleep(drainDelay);
    ingress.stopAccepting();
    const grace = config.shutdown.gracePeriod;
    const deadline = Date.now() + grace;
    const drained = await ingress.idle(grace);
    if (!drained) {
      logger.warn({ event_type: 'shutdown', in_flight: ingress.inFlight, grace_period_ms: grace }, 'grace period over: closing the remaining connections');
      ingress.destroyAll();
      await forwarder.pool.destroy();
    } else {
      await forwarder.close();
    }
    for (const l of sideListeners) {
      l.stopAccepting();
      const idle = await l.idle(Math.max(0, deadline - Date.now()));
      if (!idle) {
        logger.warn({ event_type: 'shutdown', listener: l.name }, `grace period over: closing the remaining ${l.name} connections`);
        l.destroyAll();
      }
      await l.close().catch((err: unknown) => logger.error({ err, listener: l.name }, 'closing a listener failed'));
    }
    for (const hook of options.onShutdown ?? []) {
      await hook().catch((err: unknown) => logger.error({ err }, 'shutdown hook failed'));
    }
    if (admin?.listening) await new Promise<void>((resolve) => admin.close(() => resolve()));
    logger.info({ event_type: 'shutdown' }, 'stopped');
  }

  return {
    get draining() {
      return draining;
    },
    async start() {
      const ingressAddress = await listen(ingress.server, config.listen.address, 'ingress');
      const adminAddress = admin ? await listen(admin, config.admin.address, 'admin') : undefined;
      const listeners: Record<string, AddressInfo> = {};
      for (const l of sideListeners) listeners[l.name] = await listen(l.server, l.address, l.name);
      const scheme = config.listen.tls ? 'https' : 'http';
      const summary = {
        listen: `${scheme}://${formatAddress({ host: ingressAddress.address, port: ingressAddress.port })}`,
        upstream: config.upstream.url,
        admin: adminAddress ? formatAddress({ host: adminAddress.address, port: adminAddress.port }) : 'off',
        auth: options.describe?.auth ?? 'none',
        stores: options.describe?.stores ?? 'memory',
        telemetry: options.describe?.telemetry ?? 'off',
        protection: options.describe?.protection ?? 'off',
      };
      const sides = sideListeners.map((l) => {
        const a = listeners[l.name]!;
        return [l.name, `http://${formatAddress({ host: a.address, port: a.port })} (${l.describe})`] as const;
      });
      logger.info(
        { event_type: 'startup', version, ...summary, ...Object.fromEntries(sides) },
        `agent-sidecar ${version}: listen ${summary.listen} -> upstream ${summary.upstream}; admin ${summary.admin}; ${sides.map(([n, d]) => `${n} ${d}; `).join('')}auth ${summary.auth}; stores ${summary.stores}; telemetry ${summary.telemetry}; protection ${summary.protection}`,
      );
      return { ingress: ingressAddress, admin: adminAddress, listeners };
    },
    shutdown(opts = {}) {
      stopping ??= stop(opts.drainDelay ?? config.shutdown.drainDelay);
      return stopping;
    },
    async dispose() {
      ingress.stopAccepting();
      await forwarder.pool.destroy().catch(() => {});
      for (const l of sideListeners) {
        l.stopAccepting();
        await l.close().catch(() => {});
      }
      for (const hook of options.onShutdown ?? []) await hook().catch(() => {});
    },
  };
}

async function listen(server: Server, address: string, name: string): Promise<AddressInfo> {
  const { host, port } = parseAddress(address);
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (cause) {
    throw new SidecarError('SIDECAR_LISTEN_FAILED', { message: `the ${name} listener cannot bind ${address}: ${(cause as Error).message}`, cause });
  }
  return server.address() as AddressInfo;
}

function errorMessage(err: SidecarError): string {
  const cause = err.cause as Error | undefined;
  return cause?.message ? `${err.message} (${cause.message})` : err.message;
}

export interface AssembleOptions {
  /**
   * Build every part exactly as for a start (every file read, every key imported, every
   * rule and matcher compiled, every server, pool and exporter constructed) and contact
   * nothing: Redis is not connected, the JWKS not fetched, no metric timer started, no file
   * watched. What `validate` runs; take the result apart with dispose().
   */
  offline?: boolean;
  /**
   * `run -- <command>` starts the agent: the OTLP relay is on unless telemetry.relay.enabled
   * says otherwise, and its receivers take free loopback ports unless addresses are configured.
   */
  runsAgent?: boolean;
}

/**
 * The sidecar with identity and access built from the configuration: what `run`, the demo
 * and the tests start, and what `validate` builds offline (src/check.ts).
 */
export async function assembleSidecar(
  config: Readonly<SidecarConfig>,
  baseLogger: Logger,
  extra: Partial<SidecarOptions> = {},
  assemble: AssembleOptions = {},
): Promise<Sidecar & { access: Access; telemetry: Telemetry; protection: Protection; egress: Egress | undefined }> {
  const offline = assemble.offline === true;
  const protection = await createProtection(config, baseLogger, { watch: !offline });
  // Every line written from here on (access records, audit events, warnings) is protected.
  const logger = protection.logger(baseLogger);
  let telemetry: Telemetry;
  try {
    telemetry = createTelemetry(config, logger, {
      protect: protection.telemetryExport,
      offline,
      runsAgent: assemble.runsAgent === true,
      relayWorker: config.telemetry.relay.thread ? relayWorkerSource() : undefined,
    });
  } catch (err) {
    protection.close();
    throw err;
  }
  // What is built so far holds file watches and exporters: a failure further on releases them.
  const release = async () => {
    protection.close();
    await telemetry.shutdown();
  };
  // Features instrument themselves with telemetry's meter, tracer and log sink; with telemetry
  // off those are undefined and the features record nothing.
  const { meter, tracer } = telemetry;
  const audit = instrumentAudit(config.audit.stdout ? createLogAudit(logger) : undefined, {
    meter,
    agentType: telemetry.settings.agentType,
    logs: telemetry.logs,
    spans: telemetry.observer,
  });
  // Captured text (prompts, completions, tool arguments and results) goes out with the telemetry: its rule set protects it.
  const protectText = protection.telemetry === undefined ? undefined : (text: string) => protection.telemetry!.text(text);
  let toolCapture: ToolCapture | undefined;
  try {
    toolCapture = createToolCapture(config.mcp.capture, protectText);
  } catch (err) {
    await release();
    throw err;
  }
  const access = await createAccess(config, logger, audit, { meter, tracer, agentType: telemetry.settings.agentType, toolCapture, offline }).catch(
    async (err: unknown) => {
      await release();
      throw err;
    },
  );
  const adminHandlers = new Map(access.adminHandlers);
  if (telemetry.metricsHandler !== undefined) adminHandlers.set('/metrics', telemetry.metricsHandler);
  if (meter !== undefined) observeCaches(meter, access.caches);
  let egress: Egress | undefined;
  try {
    egress = config.egress.enabled
      ? createEgress(config, logger, {
          meter,
          tracer,
          agentType: telemetry.settings.agentType,
          redis: access.redis,
          protectText,
          toolCapture,
          protectPrompt: (body) => protection.protectPrompt(body, config.egress.protectPrompts),
          // Calls to the agent's MCP servers and A2A peers are audited as the ingress's decisions are.
          audit,
          watch: !offline,
        })
      : undefined;
    const sidecar = createSidecar({
      config,
      logger,
      // Bodies are read and protected only once the request is authorized; protection rewrites
      // what the MCP list filter left of an answer.
      stages: [...access.stages, ...(protection.stage === undefined ? [] : [keepResponseBody(protection.stage)]), ...(extra.stages ?? [])],
      readinessChecks: [...access.readinessChecks, ...(extra.readinessChecks ?? [])],
      adminHandlers,
      stripHeaders: [...access.stripHeaders, ...telemetry.stripHeaders],
      describe: { ...access.describe, telemetry: telemetry.describe, protection: protection.describe },
      observers: [...(telemetry.observer ? [telemetry.observer] : []), ...(extra.observers ?? [])],
      listeners: [...(egress ? [{ ...egressListener(egress), address: config.egress.address }] : []), ...telemetry.relayReceivers, ...(extra.listeners ?? [])],
      // Telemetry last, so that what the other hooks log still goes out.
      onShutdown: [...(extra.onShutdown ?? []), () => access.close(), async () => protection.close(), () => telemetry.shutdown()],
    });
    return Object.assign(sidecar, { access, telemetry, protection, egress });
  } catch (err) {
    await egress?.close().catch(() => {});
    await access.close();
    await release();
    throw err;
  }
}

function egressListener(egress: Egress): Omit<SideListener, 'address'> {
  return {
    name: 'egress',
    server: egress.server,
    describe: egress.describe,
    stopAccepting: () => egress.stopAccepting(),
    idle: (timeout) => egress.idle(timeout),
    destroyAll: () => egress.destroyAll(),
    close: () => egress.close(),
  };
}
