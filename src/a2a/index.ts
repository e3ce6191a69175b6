export { callOf as a2aCallOf, createA2aStage, skillOf, type A2aStageOptions } from './stage.ts';
