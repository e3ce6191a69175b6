export { createMcpStage, type McpStageOptions } from './stage.ts';
export { REVISIONS as MCP_REVISIONS } from './transport.ts';
export { createProtectedResource, WELL_KNOWN as PROTECTED_RESOURCE_PATH, type ProtectedResource, type ProtectedResourceOptions } from './resource.ts';
// The JSON-RPC reading, refusals and list filtering that the egress listener's MCP and A2A routes reuse.
export { refusalAnswer, type McpRefusal } from './answer.ts';
export { isProblem, parseMessage, type RpcId, type RpcMessage } from './jsonrpc.ts';
export { createListFilter, type Keep } from './lists.ts';
export { checkStateless, revisionOf, STATELESS } from './transport.ts';
