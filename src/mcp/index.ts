export { mcpRouteSchema, MCP_ROUTE_KEYS, type McpGrant, type McpRouteDocument, type ArgumentCondition } from './policy-schema.ts';
export { compileMcpRules, type ItemDecision, type ItemKind, type McpRules } from './rules.ts';
