export { isProblem, parseMessage, type RpcId, type RpcMessage, type RpcProblem } from './message.ts';
export { bufferedBody, refusalAnswer, replyRefusal, type RpcRefusal } from './answer.ts';
export {
  createRpcClientTelemetry,
  createRpcTelemetry,
  NO_RPC_CLIENT_TELEMETRY,
  NO_RPC_TELEMETRY,
  roleLabel,
  type RpcCall,
  type RpcClientCall,
  type RpcClientRefusal,
  type RpcClientTelemetry,
  type RpcOutcome,
  type RpcPeer,
  type RpcTelemetry,
  type RpcTelemetryOptions,
  type ToolCapture,
} from './telemetry.ts';
export { readAnswers, type RpcAnswer } from './answers.ts';
export type { RpcStageOptions } from './stage-options.ts';
export { createToolCapture } from './capture.ts';
