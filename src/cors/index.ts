export { createCors, type CorsConfig, type CorsStage } from './cors.ts';
