export { isProblem, parseMessage, type RpcId, type RpcMessage, type RpcProblem } from './message.ts';
export { bufferedBody, refusalAnswer, replyRefusal, type RpcRefusal } from './answer.ts';
export { createRpcTelemetry, NO_RPC_TELEMETRY, roleLabel, type RpcCall, type RpcOutcome, type RpcTelemetry, type RpcTelemetryOptions } from './telemetry.ts';
