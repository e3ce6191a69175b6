export { normalizePath, type NormalizeOptions } from './normalize.ts';
export type { Decision, Policy, PolicyDocument, PolicyRoute, RouteMatch } from './rbac.ts';
export { compilePolicy, loadPolicyFile, type PolicyDocumentInput } from './load.ts';
export { DEFAULT_POLICY } from './default-policy.ts';
export { createPolicyHolder, type PolicyHolder, type PolicyHolderOptions } from './holder.ts';
export { mcpRouteSchema, MCP_ROUTE_KEYS, type McpGrant, type McpRouteDocument, type ArgumentCondition } from './mcp-schema.ts';
export { compileMcpRules, type ItemDecision, type ItemKind, type McpRules } from './mcp-rules.ts';
export {
  a2aRouteSchema,
  canonicalA2aMethod,
  compileA2aRules,
  A2A_METHODS_0_3,
  A2A_ROUTE_KEYS,
  type A2aDecision,
  type A2aRouteDocument,
  type A2aRules,
} from './a2a-rules.ts';
