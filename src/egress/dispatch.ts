import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';
import type { EgressConfig } from '../config/index.ts';
import { sendError, SidecarError } from '../errors/index.ts';
import { connectionTokens, HOP_BY_HOP, Relay, relayedReason, upstreamError, upstreamStatusKind } from '../proxy/index.ts';
import { AGENT_CREDENTIAL_HEADERS } from './credentials.ts';
import type { Provider } from './providers.ts';
import type { ResponseTee } from './tee.ts';

/** What a metered call needs to hear from the hop. */
export interface CallHooks {
  /**
   * traceparent (and tracestate) naming the call's CLIENT span, as [name, value, …], which
   * replace the agent's on the way to the provider; empty when nothing is traced.
   */
  readonly traceHeaders: readonly string[];
  /** 2xx responses of metered calls are read through a tee built here. */
  tee(status: number, headers: IncomingHttpHeaders): ResponseTee | undefined;
  response(status: number, headers: IncomingHttpHeaders): void;
  firstChunk(): void;
  /**
   * The call is over: cut (by either side, after the response started), failed before a
   * response (`error`), or the agent went away (`clientGone`).
   */
  end(how: { cut: boolean; error?: SidecarError | undefined; clientGone?: boolean }): void;
}

export interface Hop {
  provider: Provider;
  /** Path and query for the provider (the route prefix removed). */
  path: string;
  req: IncomingMessage;
  res: ServerResponse;
  body: Buffer | Readable | null;
  requestId: string;
  /** The sidecar changed the body (include_usage): ask for an uncompressed answer, which it then reads event by event. */
  identity: boolean;
  call: CallHooks | undefined;
  draining: boolean;
}

/**
 * One dispatcher for every provider: keep-alive pools per origin, and HTTPS_PROXY, HTTP_PROXY
 * and NO_PROXY (read once, here) honoured through undici's EnvHttpProxyAgent.
 */
export function createProviderDispatcher(config: EgressConfig, env: NodeJS.ProcessEnv): Dispatcher {
  const options = {
    connections: config.connections,
    keepAliveTimeout: config.keepAliveTimeout,
    headersTimeout: config.timeouts.headers,
    bodyTimeout: config.timeouts.body,
    connect: { timeout: config.timeouts.connect },
  };
  const httpsProxy = env.HTTPS_PROXY ?? env.https_proxy;
  const httpProxy = env.HTTP_PROXY ?? env.http_proxy;
  for (const [name, value] of [
    ['HTTPS_PROXY', httpsProxy],
    ['HTTP_PROXY', httpProxy],
  ] as const) {
    // undici would refuse it with a bare "Invalid URL"; the value is not repeated (it may hold a password).
    if (value && !URL.canParse(value))
      throw new SidecarError('SIDECAR_CONFIG_INVALID', { message: `${name} (or its lower-case spelling) is not a URL; expected http://[user:pass@]host:port` });
  }
  if (!httpsProxy && !httpProxy) return new Agent(options);
  return new EnvHttpProxyAgent({ ...options, httpsProxy, httpProxy, noProxy: env.NO_PROXY ?? env.no_proxy ?? '' });
}

/**
 * Sends the agent's request to the provider and streams the answer back with backpressure.
 * Headers pass as they are (credentials included, never read or logged) except hop-by-hop
 * ones and Host, and the agent's credentials when the sidecar holds the provider's key; the
 * response's bytes reach the agent unchanged, while a tee reads them.
 */
export function dispatchToProvider(dispatcher: Dispatcher, hop: Hop): void {
  dispatcher.dispatch(
    { origin: hop.provider.origin, path: hop.path, method: hop.req.method as Dispatcher.HttpMethod, headers: requestHeaders(hop), body: hop.body },
    new ProviderCall(hop),
  );
}

/** One call to a provider: the relay's client-gone, backpressure and cut, plus batching and the tee. */
class ProviderCall extends Relay {
  readonly #hop: Hop;
  readonly #call: CallHooks | undefined;
  #tee: ResponseTee | undefined = undefined;
  #started = false;
  // The parser hands over a provider's chunked body one chunk at a time, often hundreds per
  // socket read (a token or a few each): they leave as one chunk once the read is done, and
  // only then does the tee read that chunk (in one go), so that reading never holds a byte back.
  // When the tee holds (it decides what leaves), it reads each chunk as it comes instead.
  #batch: Buffer[] = [];
  #readAfter = false;
  #scheduled = false;

  constructor(hop: Hop) {
    super(hop.res, 'the agent closed the connection');
    this.#hop = hop;
    this.#call = hop.call;
  }

  flush(): void {
    this.#scheduled = false;
    const batch = this.#batch;
    if (batch.length === 0) return;
    const out = batch.length === 1 ? batch[0]! : Buffer.concat(batch);
    this.#batch = [];
    this.send(out);
    if (this.#readAfter) this.#tee!.push(out);
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    // As on the ingress hop: what cannot be relayed is thrown and ends the call (onResponseError).
    if (upstreamStatusKind(status) === 'interim') return;
    const hop = this.#hop;
    const reason = relayedReason(statusMessage);
    this.#call?.response(status, headers);
    const tee = this.#call?.tee(status, headers);
    this.#tee = tee;
    this.#readAfter = tee !== undefined && !tee.holds;
    const out: string[] = [];
    const listed = connectionTokens(headers.connection);
    for (const name in headers) {
      if (HOP_BY_HOP.has(name) || listed?.has(name) || (hop.identity && name === 'content-length')) continue;
      const value = headers[name];
      if (Array.isArray(value)) for (const v of value) out.push(name, v);
      else if (value !== undefined) out.push(name, value);
    }
    if (hop.draining) out.push('connection', 'close');
    this.res.writeHead(status, reason, out);
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#started) {
      this.#started = true;
      this.#call?.firstChunk();
    }
    const tee = this.#tee;
    const data = this.#readAfter || tee === undefined ? chunk : tee.push(chunk);
    if (data !== undefined) this.#batch.push(data);
    if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(flushCall, this);
    }
  }

  onResponseEnd(): void {
    this.unwatch();
    this.flush();
    const end = this.#tee?.end();
    this.res.end(end?.tail);
    const call = this.#call;
    if (call === undefined) return;
    if (end === undefined) call.end({ cut: false });
    // A read that fails still ends the call (with what was read): its budget reservation settles.
    else
      void end.read
        .then(
          () => call.end({ cut: false }),
          (err: unknown) => (accountingFailed(err), call.end({ cut: true })),
        )
        .catch(accountingFailed);
  }

  onResponseError(_c: Dispatcher.DispatchController | null, err: Error): void {
    this.unwatch();
    const call = this.#call;
    const gone = this.clientLeft(err);
    const e = gone ? undefined : upstreamError(err);
    if (!this.res.headersSent) {
      if (e !== undefined) sendError(this.res, e, this.#hop.requestId);
      call?.end({ cut: false, error: e, clientGone: gone });
      return;
    }
    this.flush();
    this.cut();
    const done = this.#tee?.abort() ?? Promise.resolve();
    const ended = () => call?.end({ cut: true, error: e, clientGone: gone });
    void done.then(ended, (err: unknown) => (accountingFailed(err), ended())).catch(accountingFailed);
  }
}

function flushCall(call: ProviderCall): void {
  call.flush();
}

/**
 * The agent's headers in their order, less hop-by-hop ones, Host and (for a buffered body) its
 * length; with a held key, less every credential the agent sent and plus the sidecar's; a
 * traced call's traceparent and tracestate are its CLIENT span's (a child of the agent's), so
 * that the provider's side of the call, and whatever it reports, hangs under the sidecar's span.
 */
function requestHeaders(hop: Hop): string[] {
  const raw = hop.req.rawHeaders;
  const listed = connectionTokens(hop.req.headers.connection);
  const buffered = Buffer.isBuffer(hop.body);
  const held = hop.provider.credential?.header();
  const trace = hop.call?.traceHeaders ?? [];
  const traced = trace.length > 0;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed?.has(name) || name === 'host' || (buffered && name === 'content-length') || (hop.identity && name === 'accept-encoding'))
      continue;
    if (held !== undefined && AGENT_CREDENTIAL_HEADERS.has(name)) continue;
    if (traced && (name === 'traceparent' || name === 'tracestate')) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  out.push('host', hop.provider.host, ...trace);
  if (held !== undefined) out.push(held[0], held[1]);
  if (hop.identity) out.push('accept-encoding', 'identity');
  return out;
}

/**
 * Accounting runs after the response is done; if it throws (a metric, a span, capture), the
 * call's figures are lost, never the process (an unhandled rejection would end it).
 */
function accountingFailed(err: unknown): void {
  process.emitWarning(`agent-sidecar: accounting an LLM call failed: ${err instanceof Error ? err.message : String(err)}`);
}
