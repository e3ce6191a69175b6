import type { Server } from 'node:net';

/**
 * A listener of its own beside the ingress (LLM egress, the OTLP relay's receivers): bound at
 * start after the ingress, and drained after the ingress at shutdown, since an agent finishing
 * its last requests still calls out and still exports.
 */
export interface SideListener {
  readonly name: string;
  readonly address: string;
  readonly server: Server;
  /** For the startup line, e.g. `/anthropic -> https://api.anthropic.com`. */
  readonly describe: string;
  stopAccepting(): void;
  /** True once idle, false if `timeout` ms pass first. */
  idle(timeout?: number): Promise<boolean>;
  destroyAll(): void;
  close(): Promise<void>;
}
