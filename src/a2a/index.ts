export { createA2aStage, skillOf, type A2aStageOptions } from './stage.ts';
