import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { isSidecarError, sendError, SidecarError } from '../errors/index.ts';
import { createDrain, listenerTimeouts, type ClientTimeouts } from '../ingress/index.ts';
import type { Logger } from '../log/index.ts';
import type { Budgets, Reservation } from './budgets.ts';
import { dispatchToProvider } from './dispatch.ts';
import type { PeerRequest } from './peer-hop.ts';
import { peerOf, type Peer } from './peers.ts';
import { operationOf, routeOf, type Operation, type Provider } from './providers.ts';
import type { Recorder } from './record.ts';
import { inspectRequest, readBody, type LlmRequest, type ProtectPrompt } from './request.ts';

export interface EgressServerOptions {
  providers: readonly Provider[];
  dispatcher: Dispatcher;
  recorder: Recorder;
  budgets: Budgets;
  /** What a metered call may cost at most, in USD, as its request says (0 for an unpriced model): its budget reservation. */
  estimate: (operation: Operation, request: LlmRequest) => number;
  maxRequestBytes: number;
  /** egress.protectPrompts: data protection of each metered request body. */
  protectPrompt: ProtectPrompt | undefined;
  /** limits.client*Timeout, which the agent's connections get too. */
  timeouts: ClientTimeouts;
  logger: Logger;
  /** The agent's MCP servers and A2A peers (egress.mcpServers, egress.agents), and their hop. */
  peers?: readonly Peer[] | undefined;
  peerHop?: ((r: PeerRequest) => Promise<void>) | undefined;
}

export interface EgressServer {
  readonly server: http.Server;
  readonly inFlight: number;
  /** Stop accepting connections; responses on open ones carry Connection: close. */
  stopAccepting(): void;
  /** Resolves true once no call is in flight, false if `timeout` ms pass first. */
  idle(timeout?: number): Promise<boolean>;
  destroyAll(): void;
}

/**
 * The egress listener: `<route>/<provider path>` goes to that provider's origin. Metered calls
 * (Messages, Chat Completions, Responses, Completions, Embeddings) are read whole first, for
 * the model and the budget; anything else (model lists, token counts, files) streams through
 * unmetered. `<peer route>/<path>` goes to an MCP server or A2A peer of the agent (peer-hop.ts).
 */
export function createEgressServer(o: EgressServerOptions): EgressServer {
  const { providers, dispatcher, recorder, budgets, logger } = o;
  const drain = createDrain();

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const route = routeOf(providers, req.url ?? '/');
    if (route === undefined) {
      const peer = o.peers === undefined ? undefined : peerOf(o.peers, req.url ?? '/');
      if (peer === undefined || o.peerHop === undefined) throw new SidecarError('SIDECAR_EGRESS_ROUTE_UNKNOWN');
      return o.peerHop({ ...peer, req, res, requestId, draining: drain.draining });
    }
    const { provider, path } = route;
    const operation = operationOf(provider, req.method, path);
    const hop = { provider, path, req, res, requestId, draining: drain.draining };
    if (operation === undefined) {
      const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
      dispatchToProvider(dispatcher, { ...hop, body: hasBody ? req : null, identity: false, call: undefined });
      return;
    }
    const request = inspectRequest(provider, operation, await readBody(req, o.maxRequestBytes), o.protectPrompt);
    let reservation: Reservation;
    try {
      reservation = await budgets.reserve(request.model, budgets.limits === 0 ? 0 : o.estimate(operation, request));
    } catch (err) {
      if (isSidecarError(err)) recorder.refused(provider, operation, request.model, err);
      throw err;
    }
    if (res.destroyed) {
      reservation.settle(0);
      return;
    }
    try {
      const call = recorder.start(provider, operation, request, req.headers, reservation);
      dispatchToProvider(dispatcher, { ...hop, body: request.body, identity: request.addedUsage, call });
    } catch (err) {
      reservation.settle(0);
      throw err;
    }
  }

  // Expect: 100-continue is answered at once (Node's default): this listener checks no
  // credentials, and a metered call's body must be read for its model and budget anyway.
  const server = http.createServer({ noDelay: true, requireHostHeader: false, ...listenerTimeouts(o.timeouts) }, (req, res) => {
    drain.enter();
    res.once('close', drain.leave);
    const requestId = randomUUID();
    handle(req, res, requestId).catch((err: unknown) => {
      const e = isSidecarError(err) ? err : new SidecarError('SIDECAR_INTERNAL', { cause: err });
      if (!isSidecarError(err)) logger.error({ err, request_id: requestId, error_type: e.code }, 'unexpected error in the egress path');
      // A refused body that was not read leaves the connection unusable.
      sendError(res, e, requestId, req.complete ? undefined : { connection: 'close' });
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  return {
    server,
    get inFlight() {
      return drain.inFlight;
    },
    stopAccepting() {
      drain.start();
      server.close();
      server.closeIdleConnections();
    },
    idle: (timeout) => drain.idle(timeout),
    destroyAll() {
      server.closeAllConnections();
    },
  };
}
