import {
  defaultTextMapGetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
} from '@opentelemetry/api';
import proxyaddr from 'proxy-addr';
import type { SidecarError } from '../errors/index.ts';
import type { RequestContext, RequestObserver, RequestTelemetry } from '../core/index.ts';
import type { AccessLevel, AccessLog, AccessRecord } from './access-log.ts';
import type { HistogramCell, Instruments, Tally } from './instruments.ts';
import { ATTR, KNOWN_METHODS, UNMATCHED } from './names.ts';

const MAX_SESSION_ID = 128;
/** As nginx logs it: the client went away before an answer started. */
const CLIENT_CLOSED = 499;
import type { SessionTracker } from './sessions.ts';

export interface ObserverOptions {
  instruments: Instruments;
  agentType: string;
  /** Undefined: no spans (telemetry.traces.enabled false). */
  tracer: Tracer | undefined;
  propagator: TextMapPropagator;
  /** Peers whose trace context is continued; undefined: the trusted proxies (ctx.forwarded.trusted). */
  trustIncoming: readonly string[] | undefined;
  recordUser: boolean;
  upstream: URL;
  scheme: 'http' | 'https';
  sessions: SessionTracker;
  sessionHeader: string;
  /** Where access records go; undefined when telemetry.logs.stdout and .otlp are both off. */
  access: AccessLog | undefined;
}

/** Per request, in ctx.telemetry: one object, no closures. */
class RequestState implements RequestTelemetry {
  server: Span | undefined = undefined;
  client: Span | undefined = undefined;
  parent: Context = ROOT_CONTEXT;
  upstreamAt = 0n;
  upstreamMs = -1;
  readonly method: string;
  readonly active: Tally;
  constructor(method: string, active: Tally) {
    this.method = method;
    this.active = active;
  }
  get context(): Context {
    return this.server === undefined ? this.parent : trace.setSpan(this.parent, this.server);
  }
}

/** This observer's state of the request; another observer's (or none) is not ours to read. */
function stateOf(ctx: RequestContext): RequestState | undefined {
  const st = ctx.telemetry;
  return st instanceof RequestState ? st : undefined;
}

/** The attribute objects of one (method, route, status, error) combination, built once. */
interface AttrSet {
  server: Attributes;
  /** http.server.request.duration and agent_request_duration_seconds cells of this combination. */
  serverDuration: HistogramCell;
  requestDuration: HistogramCell;
  /** agent_requests, agent_errors and agent_rate_limited cells of this combination. */
  requests: Tally;
  errors: Tally | undefined;
  rateLimited: Tally | undefined;
  spanName: string;
}

const mapSetter: TextMapSetter<Map<string, string>> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

// Combinations are bounded (routes x methods x statuses), but a cap keeps a bug from being a leak.
const MAX_CACHED = 20_000;

/** The request observer telemetry wires in, and where a request's live server span is found by its id (audit events). */
export type TelemetryObserver = RequestObserver & { spanOf(requestId: string): Span | undefined };

/** The telemetry observer: spans, metrics and the access record, recorded explicitly (no auto-instrumentation). */
export function createTelemetryObserver(o: ObserverOptions): TelemetryObserver {
  const { instruments: m, agentType, tracer, propagator, access, sessions, sessionHeader, recordUser } = o;
  const trust = o.trustIncoming === undefined ? undefined : proxyaddr.compile([...o.trustIncoming]);
  const upstreamHost = o.upstream.hostname;
  const upstreamPort = Number(o.upstream.port || (o.upstream.protocol === 'https:' ? 443 : 80));
  // Audit events find their request's span by request id, which the client may choose: two
  // requests in flight under one id attach their events to neither, never to the other.
  const live = new Map<string, { st: RequestState | undefined; n: number }>();

  // http.server.active_requests cells by method, made on a method's first request.
  const active = new Map<string, Tally>();
  const activeOf = (method: string): Tally => {
    let t = active.get(method);
    if (t === undefined) active.set(method, (t = m.serverActive.cell(method, () => ({ [ATTR.method]: method, [ATTR.urlScheme]: o.scheme }))));
    return t;
  };
  const sets = new Map<string, AttrSet>();
  /**
   * A request failed when it got a 5xx (the sidecar's own, such as an upstream timeout, or the
   * upstream's) or no answer at all: only those carry error.type on the HTTP metrics, count as
   * agent_requests{status="error"} and in agent_errors, the series HighErrorRate pages on.
   * A refusal is a 4xx the sidecar answered itself (401, 403, 429, 400, 404, 408, 413, 431:
   * it set the error code): the sidecar working as configured, neither success nor error, so
   * agent_requests{status="refused"}; it shows in the auth, authorization and rate-limit
   * counters and in the access record's error_type, and a client sending bad tokens cannot
   * page anyone. The agent's own 4xx carry no code here and stay status="success".
   */
  function attrSet(method: string, route: string | undefined, status: number, errorType: string | undefined): AttrSet {
    const key = `${method} ${route ?? ''} ${status} ${errorType ?? ''}`;
    let s = sets.get(key);
    if (s !== undefined) return s;
    const endpoint = route ?? UNMATCHED;
    const server: Attributes = { [ATTR.method]: method, [ATTR.urlScheme]: o.scheme, [ATTR.status]: status };
    if (route !== undefined) server[ATTR.route] = route;
    const failed = errorType !== undefined && (status >= 500 || status === CLIENT_CLOSED);
    if (failed) server[ATTR.errorType] = errorType;
    const outcome = failed ? 'error' : errorType !== undefined && status >= 400 && status < 500 ? 'refused' : 'success';
    const endpointAttrs = { agent_type: agentType, endpoint };
    s = {
      server,
      // Keyed by the attributes it exports, which carry no refusal code: requests of one status
      // with different codes (two 401s, an MCP tool refused with a 200 beside the successes)
      // are one series. Two cells of the same attributes would export duplicate points, one lost.
      serverDuration: m.serverDuration.cell(failed ? key : `${method} ${route ?? ''} ${status}`, () => server),
      requestDuration: m.requestDuration.cell(endpoint, () => endpointAttrs),
      requests: m.requests.cell(`${outcome} ${endpoint}`, () => ({ agent_type: agentType, status: outcome, endpoint })),
      errors: failed ? m.errors.cell(errorType, () => ({ agent_type: agentType, error_type: errorType })) : undefined,
      rateLimited: status === 429 ? m.rateLimited.cell(endpoint, () => endpointAttrs) : undefined,
      spanName: route === undefined ? method : `${method} ${route}`,
    };
    if (sets.size >= MAX_CACHED) sets.clear();
    sets.set(key, s);
    return s;
  }
  const clientSets = new Map<string, HistogramCell>();
  /** The http.client.request.duration cell of one (method, status, error) combination. */
  function clientCell(method: string, status: number | undefined, errorType: string | undefined): HistogramCell {
    const key = `${method} ${status ?? 0} ${errorType ?? ''}`;
    let a = clientSets.get(key);
    if (a === undefined) {
      const metric: Attributes = { [ATTR.method]: method, [ATTR.serverAddress]: upstreamHost, [ATTR.serverPort]: upstreamPort };
      if (status !== undefined) metric[ATTR.status] = status;
      if (errorType !== undefined) metric[ATTR.errorType] = errorType;
      a = m.clientDuration.cell(key, () => metric);
      if (clientSets.size >= MAX_CACHED) clientSets.clear();
      clientSets.set(key, a);
    }
    return a;
  }

  function trusted(ctx: RequestContext): boolean {
    if (trust === undefined) return ctx.forwarded.trusted;
    const peer = ctx.req.socket.remoteAddress ?? '';
    return trust(peer.startsWith('::ffff:') && peer.includes('.') ? peer.slice(7) : peer, 0);
  }

  return {
    spanOf: (requestId) => live.get(requestId)?.st?.server,

    requestStart(ctx) {
      const raw = ctx.req.method ?? 'GET';
      const method = KNOWN_METHODS.has(raw) ? raw : '_OTHER';
      const st = new RequestState(method, activeOf(method));
      ctx.telemetry = st;
      st.active.n++;
      if (tracer === undefined) return;
      const h = ctx.req.headers;
      // A client's own trace context is not continued, and never forwarded (the builder strips it).
      if ((h.traceparent !== undefined || h.baggage !== undefined) && trusted(ctx)) st.parent = propagator.extract(ROOT_CONTEXT, h, defaultTextMapGetter);
      const attributes: Attributes = { [ATTR.method]: method, [ATTR.urlScheme]: o.scheme, [ATTR.clientAddress]: ctx.forwarded.clientAddress };
      if (method === '_OTHER') attributes['http.request.method_original'] = raw;
      const host = ctx.forwarded.host;
      if (host !== undefined) attributes[ATTR.serverAddress] = hostname(host);
      const ua = h['user-agent'];
      if (ua !== undefined) attributes[ATTR.userAgent] = ua;
      st.server = tracer.startSpan(method, { kind: SpanKind.SERVER, attributes }, st.parent);
      if (st.server.isRecording()) {
        const entry = live.get(ctx.requestId);
        if (entry === undefined) live.set(ctx.requestId, { st, n: 1 });
        else {
          entry.n++;
          entry.st = undefined;
        }
      }
    },

    upstreamStart(ctx) {
      const st = stateOf(ctx);
      if (st === undefined) return;
      st.upstreamAt = process.hrtime.bigint();
      if (tracer === undefined || st.server === undefined) return;
      st.client = tracer.startSpan(
        st.method,
        { kind: SpanKind.CLIENT, attributes: { [ATTR.method]: st.method, [ATTR.serverAddress]: upstreamHost, [ATTR.serverPort]: upstreamPort } },
        trace.setSpan(st.parent, st.server),
      );
      // The upstream continues our CLIENT span; baggage from a trusted caller rides along.
      propagator.inject(trace.setSpan(st.parent, st.client), ctx.upstreamHeaders, mapSetter);
    },

    upstreamEnd(ctx, statusCode, err) {
      const st = stateOf(ctx);
      if (st === undefined || st.upstreamAt === 0n) return;
      const ms = Number(process.hrtime.bigint() - st.upstreamAt) / 1e6;
      st.upstreamMs = ms;
      const errorType = errorTypeOf(err, statusCode);
      clientCell(st.method, statusCode, errorType).record(ms / 1000);
      const span = st.client;
      if (span === undefined) return;
      st.client = undefined;
      if (span.isRecording()) {
        if (statusCode !== undefined) span.setAttribute(ATTR.status, statusCode);
        if (errorType !== undefined) {
          span.setAttribute(ATTR.errorType, errorType);
          // HTTP semconv: on CLIENT spans every 4xx and 5xx is an error.
          span.setStatus({ code: SpanStatusCode.ERROR, message: err?.message });
        }
        span.setAttribute('url.full', `${o.upstream.origin}${pathOf(ctx.target)}`);
      }
      span.end();
    },

    requestEnd(ctx) {
      const st = stateOf(ctx);
      if (st === undefined) return;
      const res = ctx.res;
      const durationNs = process.hrtime.bigint() - ctx.startedAt;
      const seconds = Number(durationNs) / 1e9;
      // A WebSocket upgrade has no ServerResponse: the status written on its socket, if any.
      const finished = res === undefined ? ctx.upgradeStatus !== undefined : res.headersSent;
      const status = finished ? (res === undefined ? ctx.upgradeStatus! : res.statusCode) : CLIENT_CLOSED;
      const errorType = ctx.errorCode ?? (!finished ? 'client_closed' : status >= 500 ? String(status) : undefined);
      const route = ctx.route;
      const set = attrSet(st.method, route, status, errorType);
      st.active.n--;
      set.serverDuration.record(seconds);
      set.requestDuration.record(seconds);
      set.requests.n++;
      if (set.errors !== undefined) set.errors.n++;
      if (set.rateLimited !== undefined) set.rateLimited.n++;

      // Only requests the sidecar let through count, and only plausible ids: refused traffic
      // must not inflate the gauge, nor fill memory with kilobyte-long header values.
      const sessionHeader_ = ctx.errorCode === undefined ? ctx.req.headers[sessionHeader] : undefined;
      const session =
        typeof sessionHeader_ === 'string' && sessionHeader_ !== '' && sessionHeader_.length <= MAX_SESSION_ID ? sessionHeader_ : ctx.principal?.sessionId;
      if (session !== undefined) sessions.touch(session);

      const path = pathOf(ctx.target);
      const server = st.server;
      if (server !== undefined) {
        if (st.client !== undefined) {
          st.client.end();
          st.client = undefined;
        }
        if (server.isRecording()) {
          const entry = live.get(ctx.requestId);
          if (entry !== undefined && --entry.n === 0) live.delete(ctx.requestId);
          server.updateName(set.spanName);
          server.setAttributes(set.server);
          server.setAttribute(ATTR.urlPath, path);
          if (errorType !== undefined && set.server[ATTR.errorType] === undefined) server.setAttribute(ATTR.refusal, errorType);
          if (recordUser && ctx.principal !== undefined) server.setAttribute(ATTR.enduser, ctx.principal.subject);
          // HTTP semconv: on SERVER spans only 5xx (and an answer never sent) is an error.
          if (status >= 500 || !finished) server.setStatus({ code: SpanStatusCode.ERROR });
        }
        server.end();
      }

      if (access === undefined) return;
      const level: AccessLevel = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
      if (!access.enabled(level)) return;
      const record: AccessRecord = {
        event_type: 'access',
        request_id: ctx.requestId,
        agent_type: agentType,
        method: st.method,
        route: route ?? UNMATCHED,
        path,
        status_code: status,
        duration_ms: Math.round(Number(durationNs) / 1e3) / 1e3,
        bytes_in: ctx.bytesIn,
        bytes_out: ctx.bytesOut,
      };
      let traceId = '';
      let spanId = '';
      let traceFlags = 0;
      if (server !== undefined) {
        const sc = server.spanContext();
        record.trace_id = traceId = sc.traceId;
        record.span_id = spanId = sc.spanId;
        traceFlags = sc.traceFlags;
      }
      if (ctx.principal !== undefined) record.user_id = ctx.principal.subject;
      if (session !== undefined) record.session_id = session;
      if (st.upstreamMs >= 0) record.upstream_duration_ms = Math.round(st.upstreamMs * 1e3) / 1e3;
      if (errorType !== undefined) record.error_type = errorType;
      access.write(level, record, `${st.method} ${path} ${status}`, traceId, spanId, traceFlags);
    },
  };
}

function errorTypeOf(err: SidecarError | undefined, status: number | undefined): string | undefined {
  if (err !== undefined) return err.code;
  return status !== undefined && status >= 400 ? String(status) : undefined;
}

function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

function hostname(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}
