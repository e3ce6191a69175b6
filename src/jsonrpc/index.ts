export { isProblem, parseMessage, type RpcId, type RpcMessage, type RpcProblem } from './message.ts';
export { bufferedBody, replyRefusal, type RpcRefusal } from './answer.ts';
