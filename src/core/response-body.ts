import type { BodyTransform, RequestContext, ResponseBodyHook } from './context.ts';
import type { Stage } from './stages.ts';

/** Two rewrites in a row: `second` gets what `first` made of each chunk. */
export function chainTransforms(first: BodyTransform, second: BodyTransform): BodyTransform {
  return {
    holdHead: first.holdHead || second.holdHead,
    push(chunk) {
      const out = first.push(chunk);
      return out === undefined || out.length === 0 ? undefined : second.push(out);
    },
    end() {
      const tail = first.end();
      const pushed = tail === undefined || tail.length === 0 ? undefined : second.push(tail);
      const rest = second.end();
      if (pushed === undefined || pushed.length === 0) return rest;
      return rest === undefined || rest.length === 0 ? pushed : Buffer.concat([pushed, rest]);
    },
  };
}

/** One hook from two: `first` sees the upstream's head and body first, `second` what it left. */
export function chainResponseBodies(first: ResponseBodyHook, second: ResponseBodyHook): ResponseBodyHook {
  return (status, headers) => {
    const a = first(status, headers);
    const b = second(status, headers);
    return a === undefined ? b : b === undefined ? a : chainTransforms(a, b);
  };
}

/** Adds a hook after the one already set, if any: it gets what the earlier one (the MCP list filter) made of the answer. */
export function addResponseBody(ctx: RequestContext, hook: ResponseBodyHook): void {
  ctx.responseBody = ctx.responseBody === undefined ? hook : chainResponseBodies(ctx.responseBody, hook);
}

/**
 * A stage that sets ctx.responseBody (data protection) without knowing of earlier ones: wrapped
 * so that a hook an earlier stage set (the MCP list filter) is kept and runs first.
 */
export function keepResponseBody(stage: Stage): Stage {
  const merge = (ctx: RequestContext, before: ResponseBodyHook) => {
    const after = ctx.responseBody;
    if (after !== undefined && after !== before) ctx.responseBody = chainResponseBodies(before, after);
    else ctx.responseBody = before;
  };
  return function keepingResponseBody(ctx) {
    const before = ctx.responseBody;
    if (before === undefined) return stage(ctx);
    const result = stage(ctx);
    if (result === undefined) return merge(ctx, before);
    return result.then(() => merge(ctx, before));
  };
}
