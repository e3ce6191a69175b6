export { callOf as a2aCallOf, createA2aStage, errorDataOf as a2aErrorDataOf, skillOf, type A2aStageOptions } from './stage.ts';
