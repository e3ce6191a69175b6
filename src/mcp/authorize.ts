import type { AuditSink } from '../audit/index.ts';
import type { RequestContext } from '../core/index.ts';
import type { SidecarErrorCode } from '../errors/index.ts';
import type { ItemKind, McpRules, Policy } from '../policy/index.ts';
import type { RpcMessage, RpcRefusal } from '../jsonrpc/index.ts';

/** What a message names: the tool, prompt or resource it uses, with its arguments. */
interface Item {
  readonly kind: ItemKind;
  readonly name: string;
  readonly args: unknown;
  /** completion/complete asks for argument values before any are chosen: only the name is judged. */
  readonly anyArguments: boolean;
}

const BY_NAME: Readonly<Record<string, ItemKind>> = { 'tools/call': 'tools', 'prompts/get': 'prompts' };
const BY_URI = new Set(['resources/read', 'resources/subscribe', 'resources/unsubscribe']);
const INVALID_PARAMS: Pick<RpcRefusal, 'code' | 'rpcCode'> = { code: 'SIDECAR_MCP_INVALID_REQUEST', rpcCode: -32602 };

/** The item a method names; undefined when it names none; null when the name it needs is missing. */
function itemOf(method: string, params: Readonly<Record<string, unknown>> | undefined): Item | undefined | null {
  const kind = BY_NAME[method];
  if (kind !== undefined) return typeof params?.name === 'string' ? { kind, name: params.name, args: params.arguments, anyArguments: false } : null;
  if (BY_URI.has(method)) return typeof params?.uri === 'string' ? { kind: 'resources', name: params.uri, args: undefined, anyArguments: false } : null;
  if (method === 'completion/complete') {
    const ref = params?.ref as Record<string, unknown> | undefined;
    if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') return { kind: 'prompts', name: ref.name, args: undefined, anyArguments: true };
    if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') return { kind: 'resources', name: ref.uri, args: undefined, anyArguments: true };
    return null;
  }
  return undefined;
}

/**
 * Authorizes one request or notification against its route's rules, after the route's own
 * permission passed: the method's permission (mcp.rpc), then the tool, prompt or resource it
 * names and its arguments. Every decision on a named item or a method with a rule is audited as
 * route decisions are. Returns the refusal, or undefined when it may pass.
 */
export function authorizeMessage(
  ctx: RequestContext,
  msg: Extract<RpcMessage, { method: string }>,
  rules: McpRules,
  policy: Policy,
  audit: AuditSink,
  dryRun: boolean,
): RpcRefusal | undefined {
  const principal = ctx.principal;
  const id = msg.kind === 'request' ? msg.id : undefined;
  const record = (allowed: boolean, permission: string | undefined, code: SidecarErrorCode | undefined, name?: string) =>
    audit.emit({
      event_type: 'authorization',
      user_id: principal?.subject,
      action: permission ?? (code === 'SIDECAR_MCP_NOT_ALLOWED' ? '(no rule)' : '(route permission)'),
      resource: `${ctx.req.method ?? 'POST'} ${ctx.route ?? ''} ${msg.method}${name === undefined ? '' : ` ${name}`}`,
      route: ctx.route,
      mcp_method: msg.method,
      mcp_name: name,
      allowed,
      dry_run: dryRun,
      reason: code,
      ip_address: ctx.forwarded.clientAddress,
      request_id: ctx.requestId,
    });

  const needs = rules.methodPermission(msg.method);
  if (needs !== undefined) {
    const allowed = policy.hasPermission(principal, needs);
    record(allowed, needs, allowed ? undefined : 'SIDECAR_MCP_METHOD_FORBIDDEN');
    if (!allowed) return { code: 'SIDECAR_MCP_METHOD_FORBIDDEN', rpcCode: -32601, id, data: { permission: needs, method: msg.method } };
  }

  const item = itemOf(msg.method, msg.params);
  if (item === undefined) return undefined;
  if (item === null) return { ...INVALID_PARAMS, id };
  let decision = rules.decide(item.kind, item.name, item.args, principal);
  if (item.anyArguments && decision.code === 'SIDECAR_ARGUMENTS_FORBIDDEN') decision = { allowed: true, code: undefined, permission: undefined };
  record(decision.allowed, decision.permission, decision.code, item.name);
  if (decision.allowed) return undefined;
  const what = item.kind === 'resources' ? 'uri' : item.kind === 'tools' ? 'tool' : 'prompt';
  return {
    code: decision.code!,
    // Invalid params, as the agent answers a tool it does not have: a refused tool looks like an absent one.
    rpcCode: -32602,
    id,
    data: { [what]: item.name, permission: decision.permission, argument: decision.argument },
  };
}
