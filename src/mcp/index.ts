export { createMcpStage, type McpStageOptions } from './stage.ts';
export { REVISIONS as MCP_REVISIONS } from './transport.ts';
export { createProtectedResource, WELL_KNOWN as PROTECTED_RESOURCE_PATH, type ProtectedResource, type ProtectedResourceOptions } from './resource.ts';
