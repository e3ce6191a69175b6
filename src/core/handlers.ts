import type { Duplex } from 'node:stream';
import type { RequestContext } from './context.ts';

/** Sends a request the stages let through on to the upstream, and the answer back (proxy/forward.ts). */
export interface RequestForwarder {
  /** Never throws: a failure is answered on ctx.res. */
  forward(ctx: RequestContext): void;
}

/** Relays Upgrade (WebSocket) handshakes and then both byte streams (proxy/upgrade.ts). */
export interface UpgradeRelay {
  /** `done` is called once when the exchange is over (tunnel closed, refusal relayed, failure written, client gone). */
  upgrade(ctx: RequestContext, head: Buffer, done: () => void): void;
  /** Tunnels currently open, for shutdown. */
  readonly open: ReadonlySet<Duplex>;
  closeAll(): void;
}
