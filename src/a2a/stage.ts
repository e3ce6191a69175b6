import type { IncomingHttpHeaders } from 'node:http';
import { addResponseBody, type RequestContext, type Stage } from '../core/index.ts';
import {
  bufferedBody,
  isProblem,
  NO_RPC_TELEMETRY,
  parseMessage,
  replyRefusal,
  type RpcCall,
  type RpcMessage,
  type RpcOutcome,
  type RpcRefusal,
  type RpcStageOptions,
} from '../jsonrpc/index.ts';
import { A2A_METHODS_0_3, canonicalA2aMethod, type A2aRules, type Policy } from '../policy/index.ts';

export type A2aStageOptions = RpcStageOptions;

type Request = Extract<RpcMessage, { method: string }>;
const SENDS = new Set(['SendMessage', 'SendStreamingMessage']);
// A2A 0.3 is assumed when the client sends no A2A-Version (A2A specification, 3.2.6).
const DEFAULT_VERSION = '0.3';
const METHODS_1_0 = new Set(Object.values(A2A_METHODS_0_3));
const VERSION = /^\s*(\d+)\.\d+\s*$/;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

/**
 * The skill a message asks for. A2A requests carry no skill id (the agent picks a skill from the
 * message), so a client that wants one says so in metadata: message.metadata.skillId, else the
 * request's metadata.skillId. Undefined: the message names no skill.
 */
export function skillOf(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const message = obj(params?.message);
  return str(obj(message?.metadata)?.skillId) ?? str(obj(params?.metadata)?.skillId);
}

/** The task a request addresses: GetTask/CancelTask name it `id`, push configs `taskId`, a message its `taskId`. */
function taskOf(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  return str(params?.id) ?? str(params?.taskId) ?? str(obj(params?.message)?.taskId);
}

/** What telemetry records of a request, on ingress and egress: its method and task, never its message. */
export function callOf(headers: IncomingHttpHeaders, msg: Request): RpcCall {
  const version = headers['a2a-version'];
  return {
    protocol: 'a2a',
    method: msg.method,
    id: msg.kind === 'request' ? msg.id : undefined,
    // Without the header, a 1.0 method name tells the revision (0.3 has no such name).
    version: typeof version === 'string' ? version : METHODS_1_0.has(msg.method) ? '1.0' : DEFAULT_VERSION,
    task: taskOf(msg.params),
  };
}

/**
 * How a refusal's error.data is written for this request: A2A 1.0 makes it a list of google.rpc
 * error details (specification 9.5), 0.3 leaves it free-form. The A2A-Version the client sends
 * decides (1.0 or later: 'errorInfo'); without one (0.3 is then assumed, 3.2.6), a 1.0 method
 * name does, since 0.3 has no such name. `method`: undefined when the request was not readable.
 */
export function errorDataOf(headers: IncomingHttpHeaders, method?: string): RpcRefusal['errorData'] {
  const major = VERSION.exec(str(headers['a2a-version']) ?? '')?.[1];
  if (major !== undefined) return Number(major) >= 1 ? 'errorInfo' : 'fields';
  return method !== undefined && METHODS_1_0.has(method) ? 'errorInfo' : 'fields';
}

/**
 * The A2A stage: on a route with an `a2a:` block, a POSTed JSON-RPC request is read (bounded),
 * parsed once and authorized per method (0.3 and 1.0 names alike) and per skill; a refusal is a
 * JSON-RPC error answered here with its stable code in error.data (0.3: data.code; 1.0: the
 * reason of the google.rpc.ErrorInfo in the data list), and what passes is
 * forwarded as the very bytes that were authorized. Other methods (GET of the agent card) and
 * other routes pass untouched.
 */
export function createA2aStage(o: A2aStageOptions): Stage {
  const { maxMessageBytes, maxDepth } = o;
  const telemetry = o.telemetry ?? NO_RPC_TELEMETRY;

  function authorize(ctx: RequestContext, msg: Request, rules: A2aRules, policy: Policy, dryRun: boolean): RpcRefusal | undefined {
    const id = msg.kind === 'request' ? msg.id : undefined;
    const method = canonicalA2aMethod(msg.method);
    const record = (allowed: boolean, permission: string | undefined, reason: RpcRefusal['code'] | undefined, skill?: string) =>
      o.audit.emit({
        event_type: 'authorization',
        user_id: ctx.principal?.subject,
        action: permission ?? (reason === 'SIDECAR_A2A_NOT_ALLOWED' ? '(no rule)' : '(route permission)'),
        resource: `${ctx.req.method ?? 'POST'} ${ctx.route ?? ''} ${msg.method}${skill === undefined ? '' : ` ${skill}`}`,
        route: ctx.route,
        a2a_method: msg.method,
        a2a_skill: skill,
        allowed,
        dry_run: dryRun,
        reason,
        ip_address: ctx.forwarded.clientAddress,
        request_id: ctx.requestId,
      });
    const needs = rules.methodPermission(method);
    if (needs !== undefined) {
      const allowed = policy.hasPermission(ctx.principal, needs);
      record(allowed, needs, allowed ? undefined : 'SIDECAR_A2A_METHOD_FORBIDDEN');
      if (!allowed) return { code: 'SIDECAR_A2A_METHOD_FORBIDDEN', rpcCode: -32601, id, data: { permission: needs, method: msg.method } };
    }
    if (!SENDS.has(method)) return undefined;
    const skill = skillOf(msg.params);
    const decision = rules.decideSkill(skill, ctx.principal);
    record(decision.allowed, decision.permission, decision.code, skill);
    if (decision.allowed) return undefined;
    return { code: decision.code!, rpcCode: -32602, id, data: { skill: skill ?? null, permission: decision.permission } };
  }

  /** Answers a refusal in the shape of the request's revision. */
  const reply = (ctx: RequestContext, r: RpcRefusal, method?: string): void => replyRefusal(ctx, { ...r, errorData: errorDataOf(ctx.req.headers, method) });

  async function post(ctx: RequestContext, rules: A2aRules): Promise<void> {
    const body = await read(ctx);
    if (!Buffer.isBuffer(body)) return reply(ctx, body);
    const msg = parseMessage(body, maxDepth);
    if (isProblem(msg))
      return reply(ctx, { code: msg.rpcCode === -32700 ? 'SIDECAR_A2A_PARSE_ERROR' : 'SIDECAR_A2A_INVALID_REQUEST', rpcCode: msg.rpcCode, status: 400 });
    ctx.requestBody = body;
    (ctx as { clientBody: unknown }).clientBody = bufferedBody(body);
    if (msg.kind === 'response') return;
    const policy = o.policy();
    const dryRun = o.dryRun || rules.dryRun;
    const refusal = authorize(ctx, msg, rules, policy, dryRun);
    const call = callOf(ctx.req.headers, msg);
    const outcome: RpcOutcome =
      refusal === undefined ? { decision: 'allowed' } : { decision: dryRun ? 'dry_run_refused' : 'refused', rpcCode: refusal.rpcCode, code: refusal.code };
    if (refusal !== undefined && !dryRun) reply(ctx, refusal, msg.method);
    const answers = telemetry.observe(ctx, call, outcome, policy.roles);
    if (answers !== undefined) addResponseBody(ctx, answers);
  }

  async function read(ctx: RequestContext): Promise<Buffer | RpcRefusal> {
    const unreadable: RpcRefusal = { code: 'SIDECAR_A2A_INVALID_REQUEST', rpcCode: -32600 };
    const encoding = ctx.req.headers['content-encoding'];
    // A compressed or absent body cannot be read here, so it cannot be authorized.
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return unreadable;
    if (ctx.clientBody === undefined) return { code: 'SIDECAR_A2A_PARSE_ERROR', rpcCode: -32700 };
    const declared = ctx.req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxMessageBytes) return { ...unreadable, status: 413 };
    const { body, complete } = await ctx.clientBody.read(maxMessageBytes);
    return complete ? body : { ...unreadable, status: 413 };
  }

  return function a2a(ctx) {
    const route = ctx.route;
    if (route === undefined) return;
    const policy = o.policy();
    if (!policy.hasA2a) return;
    const rules = policy.a2a(route);
    if (rules === undefined) return;
    if (ctx.req.method === 'POST') return post(ctx, rules);
    // Requests come only by POST; a body on another method would reach the agent unread.
    if (ctx.clientBody !== undefined) return reply(ctx, { code: 'SIDECAR_A2A_INVALID_REQUEST', rpcCode: -32600 });
  };
}
