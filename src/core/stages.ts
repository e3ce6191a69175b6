import type { RequestContext } from './context.ts';

/**
 * A stage identifies, authorizes, limits or protects a request. It refines the context or
 * throws a SidecarError to refuse it; it never writes the response itself.
 */
export type Stage = (ctx: RequestContext) => void | Promise<void>;

/** Runs stages in order; stays synchronous while every stage is. */
export function runStages(stages: readonly Stage[], ctx: RequestContext, from = 0): void | Promise<void> {
  for (let i = from; i < stages.length; i++) {
    // A stage that answered the request itself (CORS preflight, refresh endpoint) ends the chain.
    if (ctx.reply !== undefined) return;
    const result = stages[i]!(ctx);
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      return (result as Promise<void>).then(() => runStages(stages, ctx, i + 1));
    }
  }
}
