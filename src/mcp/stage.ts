import { addResponseBody, type RequestContext, type Stage } from '../core/index.ts';
import type { McpRules } from '../policy/index.ts';
import {
  bufferedBody,
  isProblem,
  NO_RPC_TELEMETRY,
  parseMessage,
  replyRefusal,
  type RpcOutcome,
  type RpcRefusal,
  type RpcStageOptions,
} from '../jsonrpc/index.ts';
import { authorizeMessage } from './authorize.ts';
import { createListFilter, isListMethod, type Keep } from './lists.ts';
import { callOf, checkStateless, revisionOf, STATELESS } from './transport.ts';

export type McpStageOptions = RpcStageOptions;

const outcome = (decision: 'refused' | 'dry_run_refused', r: RpcRefusal): RpcOutcome => ({ decision, rpcCode: r.rpcCode, code: r.code });

/**
 * The MCP stage, after identification and authorization of the route: on a route with an
 * `mcp:` block, a POSTed message is read (through ctx.clientBody, bounded), parsed once and
 * authorized per JSON-RPC method, tool, prompt or resource and argument; a refusal is a
 * JSON-RPC error answered here, and what passes is forwarded as the very bytes that were
 * authorized. List answers are filtered to what the caller may use. Any other route costs a
 * property read and a Map lookup.
 */
export function createMcpStage(o: McpStageOptions): Stage {
  const { maxMessageBytes, maxDepth } = o;
  const telemetry = o.telemetry ?? NO_RPC_TELEMETRY;

  async function post(ctx: RequestContext, rules: McpRules): Promise<void> {
    const revision = revisionOf(ctx.req.headers);
    if (typeof revision !== 'string') return replyRefusal(ctx, revision);
    const body = await readMessage(ctx);
    if (!Buffer.isBuffer(body)) return replyRefusal(ctx, body);
    const msg = parseMessage(body, maxDepth);
    if (isProblem(msg)) return replyRefusal(ctx, { ...msg, status: 400 });
    // What is forwarded is exactly what was parsed; a later reader (data protection) reads it from here.
    ctx.requestBody = body;
    (ctx as { clientBody: unknown }).clientBody = bufferedBody(body);
    const policy = o.policy();
    if (revision === STATELESS) {
      const refusal = checkStateless(ctx.req.headers, msg, revision);
      if (refusal !== undefined) {
        replyRefusal(ctx, refusal);
        if (msg.kind !== 'response') telemetry.observe(ctx, callOf(ctx.req.headers, msg, revision), outcome('refused', refusal), policy.roles);
        return;
      }
    }
    if (msg.kind === 'response') return;
    const dryRun = o.dryRun || rules.dryRun;
    const refusal = authorizeMessage(ctx, msg, rules, policy, o.audit, dryRun);
    const call = callOf(ctx.req.headers, msg, revision);
    if (refusal !== undefined && !dryRun) {
      replyRefusal(ctx, refusal);
      telemetry.observe(ctx, call, outcome('refused', refusal), policy.roles);
      return;
    }
    const answers = telemetry.observe(ctx, call, refusal === undefined ? { decision: 'allowed' } : outcome('dry_run_refused', refusal), policy.roles);
    if (msg.kind === 'request' && rules.filtersLists && isListMethod(msg.method)) {
      // A filtered answer must be read: ask for one that is not compressed.
      ctx.upstreamHeaders.set('accept-encoding', 'identity');
      ctx.responseBody = createListFilter(msg.method, msg.id, keeper(ctx, rules, dryRun), maxMessageBytes);
    }
    if (answers !== undefined) addResponseBody(ctx, answers);
  }

  /** What a list shows the caller: what it may use; in dry run everything but the hidden. */
  function keeper(ctx: RequestContext, rules: McpRules, dryRun: boolean): Keep {
    const principal = ctx.principal;
    return dryRun ? (_, name) => !rules.hidden(name) : (kind, name) => rules.visible(kind, name, principal);
  }

  async function readMessage(ctx: RequestContext): Promise<Buffer | RpcRefusal> {
    const tooLarge: RpcRefusal = { code: 'SIDECAR_MCP_MESSAGE_TOO_LARGE', rpcCode: -32600 };
    const encoding = ctx.req.headers['content-encoding'];
    // A compressed message cannot be read here, so it cannot be authorized.
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return { code: 'SIDECAR_MCP_PARSE_ERROR', rpcCode: -32700 };
    if (ctx.clientBody === undefined) return { code: 'SIDECAR_MCP_PARSE_ERROR', rpcCode: -32700 };
    const declared = ctx.req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxMessageBytes) return tooLarge;
    const { body, complete } = await ctx.clientBody.read(maxMessageBytes);
    return complete ? body : tooLarge;
  }

  return function mcp(ctx) {
    const route = ctx.route;
    if (route === undefined) return;
    const policy = o.policy();
    if (!policy.hasMcp) return;
    const rules = policy.mcp(route);
    if (rules === undefined) return;
    const method = ctx.req.method;
    if (method === 'POST') return post(ctx, rules);
    // Messages come only by POST; a body on another method (an agent honouring a method
    // override) would reach the agent unread, so it is refused.
    if (ctx.clientBody !== undefined) return replyRefusal(ctx, { code: 'SIDECAR_MCP_INVALID_REQUEST', rpcCode: -32600 });
    // A GET stream (2025 revisions) replays earlier answers when resumed: filter those too.
    if (method === 'GET' && rules.filtersLists) {
      ctx.upstreamHeaders.set('accept-encoding', 'identity');
      ctx.responseBody = createListFilter(undefined, undefined, keeper(ctx, rules, o.dryRun || rules.dryRun), maxMessageBytes);
    }
  };
}
