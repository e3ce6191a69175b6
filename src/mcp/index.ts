export { createMcpStage, type McpStageOptions } from './stage.ts';
export { REVISIONS as MCP_REVISIONS } from './transport.ts';
export { createProtectedResource, WELL_KNOWN as PROTECTED_RESOURCE_PATH, type ProtectedResource, type ProtectedResourceOptions } from './resource.ts';
// The list filtering and transport checks the egress listener's MCP routes reuse (JSON-RPC itself: src/jsonrpc/).
export { createListFilter, type Keep } from './lists.ts';
export { callOf as mcpCallOf, checkStateless, revisionOf, STATELESS } from './transport.ts';
